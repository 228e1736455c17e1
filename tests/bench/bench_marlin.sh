#!/usr/bin/env bash
# ckpt marlin (and --undo) vs cp of the source, on a >= 2 GB INT4 checkpoint (issue 14: <= 1.0x cp
# on the 2-core machine): a synthetic 76-layer bf16 Llama quantized once per format with
# `ckpt quantize --int4` (g128), then medians of alternating cp / relayout runs and peak RSS. Two
# fair pairs: `marlin --no-sync` against plain cp (both leave their bytes in the page cache: the
# target), and durable `marlin` (fsync before the rename) + fsync of its output against cp + fsync
# of the copy (both wait for the disk). Durable marlin against plain cp would time the disk.
# Usage: bench_marlin.sh path/to/ckpt [runs] [formats, default "compressed-tensors gptq awq"]
set -euo pipefail
ckpt=$1
runs=${2:-5}
source "$(dirname "$0")/lib.sh"

src=$(synthetic "llama-76" --layers 76)
printf '%-28s %12s %8s %9s %8s %10s %11s %8s %10s %12s\n' case int4_bytes cp_s nosync_s ratio cpsync_s durable_s ratio cp_rss_MB marlin_rss_MB
status=0
for format in ${3:-compressed-tensors gptq awq}; do
  sym=--sym
  [ "$format" = awq ] && sym=--asym
  q="$bench_dir/int4-76-$format"
  [ -f "$q/config.json" ] || "$ckpt" quantize "$src" "$q" --int4 --group-size 128 --format "$format" "$sym" -q
  m="$bench_dir/marlin-76-$format"
  [ -f "$m/config.json" ] || "$ckpt" marlin "$q" "$m" -q
  for dir in forward undo; do
    if [ $dir = forward ]; then in=$q; args=(); else in=$m; args=(--undo); fi
    warm "$in"/*
    bytes=$(stat -c %s "$in/model.safetensors")
    against_cp_nosync=1 against_cp "$in/model.safetensors" "$runs" "$bench_dir/m-out" "$ckpt" marlin "${args[@]}" "$in" "$bench_dir/m-out" -q
    ratio=$(awk -v a="$nosync_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
    dratio=$(awk -v a="$cmdsync_med" -v b="$cpsync_med" 'BEGIN{printf "%.3f", a/b}')
    printf '%-28s %12s %8s %9s %8s %10s %11s %8s %10s %12s\n' "$format $dir" "$bytes" "$cp_med" "$nosync_med" "$ratio" \
      "$cpsync_med" "$cmdsync_med" "$dratio" "$cp_rss" "$cmd_rss"
    echo "  runs: cp $cp_runs | marlin --no-sync $nosync_runs | cp+fsync $cpsync_runs | marlin+fsync $cmdsync_runs"
    awk -v r="$ratio" 'BEGIN{exit !(r <= 1.0)}' || { echo "$format $dir: target missed (ratio $ratio > 1.0)"; status=1; }
  done
done
exit $status
