#!/usr/bin/env bash
# quantize --fp8 (per-tensor, CPU) vs cp of the source, on a ~2.2 GB bf16 Llama-shaped checkpoint
# (issue 6: <= 1.5x cp, peak RSS <= 512 MB): medians of alternating runs. Also block and channel.
# Usage: bench_quantize.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

src=$(synthetic "llama-22" --layers 22)
bytes=$(stat -c %s "$src/model.safetensors")
printf '%-8s %12s %8s %10s %8s %10s %12s\n' scheme src_bytes cp_s quant_s ratio cp_rss_MB quant_rss_MB
status=0
for scheme in tensor block channel; do
  against_cp "$src/model.safetensors" "$runs" "$bench_dir/q-out" \
    "$ckpt" quantize "$src" "$bench_dir/q-out" --fp8 --scheme "$scheme" -q
  ratio=$(awk -v a="$cmd_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
  rss=$cmd_rss
  printf '%-8s %12s %8s %10s %8s %10s %12s\n' "$scheme" "$bytes" "$cp_med" "$cmd_med" "$ratio" "$cp_rss" "$rss"
  if [ "$scheme" = tensor ]; then
    awk -v r="$ratio" -v m="$rss" 'BEGIN{exit !(r <= 1.5 && m <= 512)}' || { echo "per-tensor target missed: ratio $ratio (<= 1.5), RSS $rss MB (<= 512)"; status=1; }
  fi
done
exit $status
