#!/usr/bin/env bash
# quantize --int4 (RTN g128, CPU) vs cp of the source, on a ~2.2 GB bf16 Llama-shaped checkpoint
# (issue 13: <= 1.0x cp, peak RSS <= 512 MB): medians of alternating runs, every format. Two fair
# pairs, as bench_marlin.sh times them: `quantize --no-sync` against plain cp (both leave their
# bytes in the page cache: the target), and durable `quantize` (fsync before the rename) + fsync of
# its output against cp + fsync of the copy (both wait for the disk). Durable quantize against
# plain cp would time the disk.
# Usage: bench_quantize_int4.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

src=$(synthetic "llama-22" --layers 22)
bytes=$(stat -c %s "$src/model.safetensors")
printf '%-20s %12s %8s %9s %8s %10s %11s %8s %12s\n' format src_bytes cp_s nosync_s ratio cpsync_s durable_s ratio quant_rss_MB
status=0
for format in gptq awq compressed-tensors; do
  sym=--sym
  [ "$format" = awq ] && sym=--asym
  against_cp_nosync=1 against_cp "$src/model.safetensors" "$runs" "$bench_dir/q-out" \
    "$ckpt" quantize "$src" "$bench_dir/q-out" --int4 --group-size 128 --format "$format" "$sym" -q
  ratio=$(awk -v a="$nosync_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
  dratio=$(awk -v a="$cmdsync_med" -v b="$cpsync_med" 'BEGIN{printf "%.3f", a/b}')
  printf '%-20s %12s %8s %9s %8s %10s %11s %8s %12s\n' "$format" "$bytes" "$cp_med" "$nosync_med" "$ratio" \
    "$cpsync_med" "$cmdsync_med" "$dratio" "$cmd_rss"
  echo "  runs: cp $cp_runs | quantize --no-sync $nosync_runs | cp+fsync $cpsync_runs | quantize+fsync $cmdsync_runs"
  awk -v r="$ratio" -v m="$cmd_rss" 'BEGIN{exit !(r <= 1.0 && m <= 512)}' ||
    { echo "$format: target missed: ratio $ratio (<= 1.0), RSS $cmd_rss MB (<= 512)"; status=1; }
done
exit $status
