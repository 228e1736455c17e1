#!/usr/bin/env bash
# Here, on the 2-core machine: a bundle of ckpt, every GPU test and benchmark binary ctest knows
# (label gpu) and the synthetic-checkpoint writer — what a device call needs for `make test-gpu`'s
# tests and the benchmark scripts, under the device tool's 64 MiB carry limit (a bundle of every
# executable is over it).
#
#   bash tests/gpu/remote/gpu_tests_bundle.sh BUILD_DIR OUT.tar.xz
set -euo pipefail
build=$(cd "${1:?usage: gpu_tests_bundle.sh BUILD_DIR OUT.tar.xz}" && pwd)
out=${2:?usage: gpu_tests_bundle.sh BUILD_DIR OUT.tar.xz}
mapfile -t tests < <(cd "$build" && ctest -L gpu -N -V | grep -oE "$build/tests/[A-Za-z0-9_]+" | sed "s|$build/tests/||" | sort -u)
[ "${#tests[@]}" -gt 0 ] || { echo "gpu_tests_bundle: ctest lists no GPU test in $build" >&2; exit 1; }
exec bash "$(dirname "$0")/bundle.sh" "$build" "$out" "${tests[@]}" ckpt_make_synthetic
