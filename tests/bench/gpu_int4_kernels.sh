#!/usr/bin/env bash
# GPU machine: the INT4 quantize kernels (issue 13) and the Marlin relayout kernel (issue 14)
# against a device-to-device copy of the same bytes, on a 28672 x 8192 bf16 weight (a Llama-70B
# MLP projection). Target: >= 70% of the copy's bandwidth for g128 quantize in every format and
# for the relayout from every source without act-order (the act-order gather and the wide-group
# path are reported, not held to it).
# Usage: gpu_int4_kernels.sh path/to/ckpt
set -euo pipefail
ckpt=$(realpath "${1:?usage: gpu_int4_kernels.sh path/to/ckpt}")
build=$(dirname "$ckpt")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
CKPT_BENCH=1 "$build/tests/bench_int4_gpu" --gtest_filter='Int4GpuBench.*' | tee "$out" | grep BENCH
status=0
while read -r _ kernel rest; do
  ratio=${rest##* }
  case "$rest" in *act-order* | *channel*) continue ;; esac
  case "$kernel" in int4_quantize) case "$rest" in *g128*) ;; *) continue ;; esac ;; esac
  if ! awk -v r="$ratio" 'BEGIN{exit !(r >= 0.70)}'; then
    echo "$kernel ${rest%% MB*}: $ratio of copy bandwidth (target >= 0.70)"
    status=1
  fi
done < <(grep -E '^BENCH (int4_quantize|marlin_repack)' "$out")
exit $status
