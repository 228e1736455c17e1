#!/usr/bin/env bash
# quantize --int4 (RTN g128, CPU) vs cp of the source, on a ~2.2 GB bf16 Llama-shaped checkpoint
# (issue 13: <= 1.0x cp, peak RSS <= 512 MB): medians of alternating runs, every format.
# Usage: bench_quantize_int4.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

src=$(synthetic "llama-22" --layers 22)
bytes=$(stat -c %s "$src/model.safetensors")
printf '%-20s %12s %8s %10s %8s %10s %12s\n' format src_bytes cp_s quant_s ratio cp_rss_MB quant_rss_MB
status=0
for format in gptq awq compressed-tensors; do
  sym=--sym
  [ "$format" = awq ] && sym=--asym
  against_cp "$src/model.safetensors" "$runs" "$bench_dir/q-out" \
    "$ckpt" quantize "$src" "$bench_dir/q-out" --int4 --group-size 128 --format "$format" "$sym" -q
  ratio=$(awk -v a="$cmd_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
  printf '%-20s %12s %8s %10s %8s %10s %12s\n' "$format" "$bytes" "$cp_med" "$cmd_med" "$ratio" "$cp_rss" "$cmd_rss"
  awk -v r="$ratio" -v m="$cmd_rss" 'BEGIN{exit !(r <= 1.0 && m <= 512)}' || { echo "$format target missed: ratio $ratio (<= 1.0), RSS $cmd_rss MB (<= 512)"; status=1; }
done
exit $status
