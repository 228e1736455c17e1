#!/usr/bin/env bash
# quantize --int4 (RTN g128, CPU) of two binaries against cp, interleaved: per run and format, cp of
# the source, OLD and NEW `quantize --no-sync`, each from a settled page cache, so that this
# guest's page-cache spells (cp of the same file 0.6-3 s within minutes) hit all three alike.
# Prints "format what wall_s cpu_s" per run (cpu = user + sys), then medians.
# Usage: ab_quantize_int4.sh OLD_CKPT NEW_CKPT [runs]
set -euo pipefail
old=$1 new=$2 runs=${3:-7}
source "$(dirname "$0")/lib.sh"
src=$(synthetic "llama-22" --layers 22)
log="$bench_dir/ab.log"
: >"$log"
for ((i = 0; i < runs; i++)); do
  for format in gptq awq compressed-tensors; do
    sym=--sym; [ "$format" = awq ] && sym=--asym
    rm -rf "$bench_dir/cp-out" "$bench_dir/q-out"; settle
    timed cp "$src/model.safetensors" "$bench_dir/cp-out"; echo "$format cp $secs $cpu_s" | tee -a "$log"
    rm -rf "$bench_dir/cp-out"; settle
    for which in old new; do
      bin=$old; [ "$which" = new ] && bin=$new
      timed "$bin" quantize "$src" "$bench_dir/q-out" --int4 --group-size 128 --format "$format" "$sym" -q --no-sync
      echo "$format $which $secs $cpu_s" | tee -a "$log"
      rm -rf "$bench_dir/q-out"; settle
    done
  done
done
echo "medians (wall s, cpu s):"
for format in gptq awq compressed-tensors; do
  for what in cp old new; do
    w=$(awk -v f="$format" -v t="$what" '$1 == f && $2 == t {print $3}' "$log")
    c=$(awk -v f="$format" -v t="$what" '$1 == f && $2 == t {print $4}' "$log")
    printf '%-20s %-4s %6s %6s\n' "$format" "$what" "$(median $w)" "$(median $c)"
  done
done
