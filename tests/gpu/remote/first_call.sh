#!/usr/bin/env bash
# On the GPU machine, the first device call of a session, in one command (device windows are short
# and the tool returns only the last 12,000 characters of output): every GPU test (run_ctest.sh),
# then tests/bench/gpu_validate.sh on the Llama-3-8B-shaped checkpoint — unpacked and packed,
# load against the pinned floor, allocate beside the load's device copy — with only its summary
# shown. Bundle made here by gpu_tests_bundle.sh.
#
#   bash tests/gpu/remote/first_call.sh BUNDLE.tar.xz [RUNS]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(bash "$here/setup.sh" "${1:?usage: first_call.sh BUNDLE.tar.xz [RUNS]}") || exit 1
export LD_LIBRARY_PATH=$root/lib-bundle
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }
nvidia-smi -L
timeout 360 bash "$here/../run_ctest.sh" "$root/build" 2>&1 | tail -30
stamp "run_ctest exit ${PIPESTATUS[0]}"
CKPT_BENCH_RUNS=${2:-2} CKPT_BENCH_FP8=0 timeout 420 bash "$here/../../bench/gpu_validate.sh" "$root/build/ckpt" 2>&1 |
  grep -vE '^\s*$' | tail -16
stamp "gpu_validate exit ${PIPESTATUS[0]}"
