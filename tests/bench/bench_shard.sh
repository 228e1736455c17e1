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
against_cp "$src/model.safetensors" "$runs" "$bench_dir/sh-out" "$ckpt" shard "$src" "$bench_dir/sh-out" --tp 8 -q
printf '%-12s %10s %10s %10s %8s %12s %12s\n' source bytes cp_s shard_s ratio cp_rss_MB ckpt_rss_MB
printf '%-12s %10s %10s %10s %8.3f %12s %12s\n' "22-layer" "$bytes" "$cp_med" "$cmd_med" \
  "$(awk -v a="$cmd_med" -v b="$cp_med" 'BEGIN{print a/b}')" "$cp_rss" "$cmd_rss"
echo "cp runs: $cp_runs"
echo "shard runs: $cmd_runs"
