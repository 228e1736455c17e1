#!/usr/bin/env bash
# quantize --int4 (RTN g128, CPU) vs cp of the source, on a ~2.2 GB bf16 Llama-shaped checkpoint
# (issue 13: <= 1.0x cp, peak RSS <= 512 MB): medians of alternating runs, every format. cp leaves
# its bytes in the page cache while quantize fsyncs its output before the rename, so quantize
# --no-sync is timed as well (the same work without the wait for the disk), each against the cp
# runs it alternates with.
# Usage: bench_quantize_int4.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

src=$(synthetic "llama-22" --layers 22)
bytes=$(stat -c %s "$src/model.safetensors")
printf '%-20s %12s %8s %10s %8s %8s %12s %8s %12s\n' format src_bytes cp_s quant_s ratio cp2_s nosync_s ratio quant_rss_MB
status=0
for format in gptq awq compressed-tensors; do
  sym=--sym
  [ "$format" = awq ] && sym=--asym
  args=(quantize "$src" "$bench_dir/q-out" --int4 --group-size 128 --format "$format" "$sym" -q)
  against_cp "$src/model.safetensors" "$runs" "$bench_dir/q-out" "$ckpt" "${args[@]}"
  ratio=$(awk -v a="$cmd_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
  durable_cp=$cp_med durable_cmd=$cmd_med durable_rss=$cmd_rss
  echo "runs $format: cp $cp_runs | quantize $cmd_runs" >&2
  against_cp "$src/model.safetensors" "$runs" "$bench_dir/q-out" "$ckpt" "${args[@]}" --no-sync
  nosync_ratio=$(awk -v a="$cmd_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
  echo "runs $format: cp $cp_runs | quantize --no-sync $cmd_runs" >&2
  printf '%-20s %12s %8s %10s %8s %8s %12s %8s %12s\n' "$format" "$bytes" "$durable_cp" "$durable_cmd" "$ratio" \
    "$cp_med" "$cmd_med" "$nosync_ratio" "$durable_rss"
  awk -v r="$ratio" -v m="$durable_rss" 'BEGIN{exit !(r <= 1.0 && m <= 512)}' || { echo "$format target missed: ratio $ratio (<= 1.0), RSS $durable_rss MB (<= 512)"; status=1; }
done
exit $status
