#!/usr/bin/env bash
# `make test-gpu` (after the ctest GPU tests): every GPU-machine check script (tests/gpu/check_*.sh,
# which may use torch/transformers/safetensors there) and every GPU benchmark
# (tests/bench/gpu_*.sh). Stops at the first failure.
set -euo pipefail
ckpt=${1:?usage: run_all.sh path/to/ckpt}
root=$(cd "$(dirname "$0")/../.." && pwd)
shopt -s nullglob
for s in "$root"/tests/gpu/check_*.sh; do
  echo "== $(basename "$s")"
  bash "$s" "$ckpt" "$root/testdata"
done
for b in "$root"/tests/bench/gpu_*.sh; do
  echo "== $(basename "$b")"
  bash "$b" "$ckpt"
done
