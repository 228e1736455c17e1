#!/usr/bin/env bash
# On the GPU machine, in the repository copy the device tool runs in: unpacks a bundle made by
# bundle.sh and rebuilds the checkout path its binaries were compiled with (ROOT), pointing its
# testdata at this copy's. Prints the ROOT, whose build/ holds ckpt and the tests.
#
#   root=$(bash tests/gpu/remote/setup.sh build-gpu/NAME.tar.xz) && export LD_LIBRARY_PATH=$root/lib-bundle
set -euo pipefail
bundle=$(cd "$(dirname "${1:?usage: setup.sh BUNDLE.tar.xz}")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")/../../.." && pwd)
tmp=$(mktemp -d)
tar -C "$tmp" -xJf "$bundle"
root=$(cat "$tmp/ROOT")
if [ "$root" = "$here" ]; then
  # The device tool copies the checkout to the same path: only the build and the libraries move in.
  rm -rf "$root/build" "$root/lib-bundle"
  mv "$tmp/build" "$root/build"
  mv "$tmp/lib" "$root/lib-bundle"
  rm -rf "$tmp"
else
  rm -rf "$root"
  mkdir -p "$(dirname "$root")"
  mv "$tmp/lib" "$tmp/lib-bundle"
  mv "$tmp" "$root"
  ln -s "$here/testdata" "$root/testdata"
fi
echo "$root"
