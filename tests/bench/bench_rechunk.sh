#!/usr/bin/env bash
# rechunk vs cp of the same bytes (issue 2): median of alternating runs, peak RSS, two sizes.
# Usage: bench_rechunk.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

printf '%-10s %10s %8s %10s %7s %12s %12s %10s %13s %7s\n' size bytes cp_s rechunk_s ratio cp_rss_MB ckpt_rss_MB \
  cp+sync_s rechunk+sync_s ratio
for layers in 22 44; do
  src=$(synthetic "llama-$layers" --layers "$layers")
  bytes=$(stat -c %s "$src/model.safetensors")
  against_cp "$src/model.safetensors" "$runs" "$bench_dir/rc-out" \
    "$ckpt" rechunk "$src" "$bench_dir/rc-out" --max-shard-size 1GB -q
  rc_med=$cmd_med
  cpd=() rcd=()
  for ((i = 0; i < runs; i++)); do
    rm -rf "$bench_dir/cp-out" "$bench_dir/rc-out"; settle
    durable cp "$src/model.safetensors" "$bench_dir/cp-out"; cpd+=("$secs")
    rm -rf "$bench_dir/cp-out"; settle
    durable "$ckpt" rechunk "$src" "$bench_dir/rc-out" --max-shard-size 1GB -q; rcd+=("$secs")
  done
  rm -rf "$bench_dir/cp-out" "$bench_dir/rc-out"
  cpd_med=$(median "${cpd[@]}"); rcd_med=$(median "${rcd[@]}")
  printf '%-10s %10s %8s %10s %7.3f %12s %12s %10s %13s %7.3f\n' "$layers-layer" "$bytes" "$cp_med" "$rc_med" \
    "$(awk -v a="$rc_med" -v b="$cp_med" 'BEGIN{print a/b}')" "$cp_rss" "$cmd_rss" \
    "$cpd_med" "$rcd_med" "$(awk -v a="$rcd_med" -v b="$cpd_med" 'BEGIN{print a/b}')"
done
