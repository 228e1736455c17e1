#!/usr/bin/env bash
# GPU machine: the Marlin W4A16 GEMM (issue 14) beside cuBLAS bf16 on the Llama-3-8B / 70B Linear
# shapes at M = 1, 4, 16, 64, and its bytes per second against the HBM read bandwidth of the same
# run. Goals at M = 1: >= 3x cuBLAS bf16 and >= 80% of HBM on the 8192 x 8192 and larger shapes;
# lines that miss them are listed and the script fails.
# Usage: gpu_marlin_gemm.sh path/to/ckpt
set -euo pipefail
ckpt=$(realpath "${1:?usage: gpu_marlin_gemm.sh path/to/ckpt}")
build=$(dirname "$ckpt")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
CKPT_BENCH=1 "$build/tests/bench_marlin_gemm" --gtest_filter='MarlinGemmBench.*' | tee "$out" | grep BENCH
status=0
while read -r line; do
  speedup=$(sed -E 's/.*speedup +([0-9.]+)x.*/\1/' <<<"$line")
  hbm=$(sed -E 's/.*= ([0-9.]+) of HBM.*/\1/' <<<"$line")
  if ! awk -v s="$speedup" -v h="$hbm" 'BEGIN{exit !(s >= 3.0 && h >= 0.80)}'; then
    echo "missed: ${line#BENCH }"
    status=1
  fi
done < <(grep -E '^BENCH marlin_gemm k=( 8192|14336) .* m= 1 ' "$out")
exit $status
