#!/usr/bin/env bash
# shard --tp 8 vs cp of the same bytes (issue 5): a >= 2 GB Llama-shaped checkpoint (22 layers,
# hidden 2048, 32 heads / 4 KV heads: TinyLlama-1.1B's shape, 2.2 GB bf16), median of
# alternating runs, peak RSS. Target: ratio <= 1.3, ckpt RSS <= 512 MB.
# Usage: bench_shard.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

src=$(synthetic "llama-22" --layers 22)
bytes=$(stat -c %s "$src/model.safetensors")
cat "$src/model.safetensors" >/dev/null  # both start from a warm page cache
cps=() shs=() cprss=() shrss=()
for ((i = 0; i < runs; i++)); do
  rm -rf "$bench_dir/cp-out" "$bench_dir/sh-out"; settle
  timed cp "$src/model.safetensors" "$bench_dir/cp-out"; cps+=("$secs"); cprss+=("$rss_mb")
  rm -rf "$bench_dir/cp-out"; settle
  timed "$ckpt" shard "$src" "$bench_dir/sh-out" --tp 8 -q; shs+=("$secs"); shrss+=("$rss_mb")
done
rm -rf "$bench_dir/cp-out" "$bench_dir/sh-out"
cp_med=$(median "${cps[@]}"); sh_med=$(median "${shs[@]}")
printf '%-12s %10s %10s %10s %8s %12s %12s\n' source bytes cp_s shard_s ratio cp_rss_MB ckpt_rss_MB
printf '%-12s %10s %10s %10s %8.3f %12s %12s\n' "22-layer" "$bytes" "$cp_med" "$sh_med" \
  "$(awk -v a="$sh_med" -v b="$cp_med" 'BEGIN{print a/b}')" "$(max_of "${cprss[@]}")" "$(max_of "${shrss[@]}")"
echo "cp runs: ${cps[*]}"
echo "shard runs: ${shs[*]}"
