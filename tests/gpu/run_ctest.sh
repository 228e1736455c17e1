#!/usr/bin/env bash
# `make test-gpu`, first step: the ctest GPU tests (label gpu). A GPU test skips itself where there
# is no GPU, which under ctest reads as success. Here a skip is loud: every skipped test is listed,
# and the run fails when no GPU test ran at all or any skipped for want of a CUDA GPU (this target
# is meant for the GPU machine, where that means the GPU was not seen). Benchmarks, which skip
# under ctest by design (CKPT_BENCH), and tests that need more GPUs than the machine has are
# listed but do not fail the run.
set -uo pipefail
build=${1:?usage: run_ctest.sh BUILD_DIR}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
(cd "$build" && ctest -L gpu --output-on-failure -V) >"$log" 2>&1
rc=$?
grep -E '^ *[0-9]+/[0-9]+ Test +#|tests passed|tests failed|Errors while running' "$log" || true
if [ "$rc" -ne 0 ]; then
  grep -E -B2 -A40 'FAILED|Failure' "$log" | tail -n 200
  echo "test-gpu: GPU tests FAILED (exit $rc)" >&2
  exit "$rc"
fi
total=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#' "$log")
skipped=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#.*Skipped' "$log")
# gtest prints the skip reason on the line after "[  SKIPPED ]"'s source position.
no_gpu=$(grep -cE 'Skipped: no CUDA GPU|^[0-9]+: .*no CUDA GPU' "$log")
ran=$((total - skipped))
if [ "$skipped" -gt 0 ]; then
  echo "================================================================================" >&2
  echo "test-gpu: $skipped of $total GPU tests SKIPPED:" >&2
  grep -E '^ *[0-9]+/[0-9]+ Test +#.*Skipped' "$log" | sed 's/^/  /' >&2
  grep -E '^[0-9]+: .*(no CUDA GPU|needs [0-9]+ CUDA GPUs|benchmark: set CKPT_BENCH)' "$log" | sort -u | sed 's/^/  /' >&2
  echo "================================================================================" >&2
fi
if [ "$total" -eq 0 ] || [ "$ran" -eq 0 ] || [ "$no_gpu" -gt 0 ]; then
  echo "test-gpu: FAILED: $ran of $total GPU tests ran; no CUDA GPU was usable (nvidia-smi? CUDA_VISIBLE_DEVICES?)." >&2
  echo "test-gpu: a GPU run in which the GPU tests skip is not a pass." >&2
  exit 1
fi
echo "test-gpu: $ran of $total GPU tests ran and passed"
