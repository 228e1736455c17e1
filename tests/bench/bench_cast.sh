#!/usr/bin/env bash
# ckpt cast bf16 -> f16 vs cp of the same bytes (issue 4): a synthetic Llama-shaped checkpoint of
# >= 2 GB, median of alternating runs, peak RSS. Targets: <= 1.2x cp, <= 512 MB; exits 1 if missed.
# Usage: bench_cast.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

src=$(synthetic "llama-22" --layers 22)
bytes=$(stat -c %s "$src/model.safetensors")
against_cp "$src/model.safetensors" "$runs" "$bench_dir/cast-out" "$ckpt" cast "$src" "$bench_dir/cast-out" --dtype f16 -q
ratio=$(awk -v a="$cmd_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
rss=$cmd_rss
printf '%-12s %12s %8s %10s %8s %12s %12s\n' case bytes cp_s cast_s ratio cp_rss_MB ckpt_rss_MB
printf '%-12s %12s %8s %10s %8s %12s %12s\n' "bf16->f16" "$bytes" "$cp_med" "$cmd_med" "$ratio" "$cp_rss" "$rss"
echo "runs: cp $cp_runs | cast $cmd_runs"
awk -v r="$ratio" -v m="$rss" -v b="$bytes" 'BEGIN{ok = r <= 1.2 && m <= 512 && b >= 2e9;
  print (ok ? "targets met" : "TARGETS MISSED") " (ratio <= 1.2, peak RSS <= 512 MB, >= 2 GB)"; exit !ok}'
