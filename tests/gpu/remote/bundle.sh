#!/usr/bin/env bash
# Packs a build made here for the GPU machine, which can build nothing of ours in reasonable device
# time and lacks the -dev packages: the stripped ckpt and test binaries, ctest's files, the scripts
# and recipes of this checkout, and the shared libraries the binaries need that the GPU machine's
# Ubuntu does not have. tests/gpu/remote/setup.sh unpacks it there.
#
#   bash tests/gpu/remote/bundle.sh BUILD_DIR OUT.tar.xz [TEST ...]
#
# With TEST names (executables under BUILD_DIR/tests), only ckpt and those travel: a smaller bundle
# for a call that runs a few of them (the device tool carries 64 MiB at most).
# The binaries hold absolute paths of this checkout (the testdata folder, build/ckpt, recipes/:
# tests/CMakeLists.txt compiles them in), so the bundle records the checkout's root and setup.sh
# recreates that path on the GPU machine.
set -euo pipefail
build=$(cd "${1:?usage: bundle.sh BUILD_DIR OUT.tar.xz}" && pwd)
out=${2:?usage: bundle.sh BUILD_DIR OUT.tar.xz}
shift 2
root=$(cd "$(dirname "$0")/../../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/build" "$stage/lib"
echo "$root" >"$stage/ROOT"
# ctest's files: CTestTestfile.cmake and the gtest_discover_tests lists they include.
(cd "$build" && find . -path ./CMakeFiles -prune -o -name '*.cmake' -print0 | grep -zv '/CMakeFiles/' |
   xargs -0 cp --parents -t "$stage/build")
# Every executable the build made (ckpt, tests, benchmarks), without CMake's probes.
if [ $# -gt 0 ]; then
  executables() { echo ./ckpt; for t in "$@"; do echo "./tests/$t"; done; }
else
  executables() { find . -path ./CMakeFiles -prune -o -type f -perm -u+x -print | grep -v '/CMakeFiles/'; }
fi
(cd "$build" && executables "$@" | while read -r f; do
     cp --parents "$f" "$stage/build"
     strip --strip-debug "$stage/build/$f" 2>/dev/null || true
   done)
cp -r "$root/tests" "$root/recipes" "$stage/"
# Libraries from Debian packages the GPU machine lacks (it has libzstd, libgomp and the CUDA ones).
for so in $(ldd "$build/ckpt" | awk '/=> \//{print $3}' | grep -E 'libonig|libutf8proc|libsentencepiece|libprotobuf-lite|libxxhash'); do
  cp -L "$so" "$stage/lib/"
done
XZ_OPT="-T0 -3" tar -C "$stage" -cJf "$out" .
echo "bundle: $(du -h "$out" | cut -f1) -> $out (root $root)"
