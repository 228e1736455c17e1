#!/usr/bin/env bash
# Unpacks Debian packages into an ignored folder for a machine that cannot install them (the GPU
# machine has no apt access): run here, then carry the folder; CMake finds headers and libraries
# below it (CKPT_GPUDEPS_DIR, default <repo>/.gpudeps, and the binaries' RUNPATH points there).
#   tests/support/gpudeps.sh [PKG ...]     (default: the tokenizer's libraries)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="${CKPT_GPUDEPS_DIR:-$repo/.gpudeps}"
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(libonig5 libonig-dev libutf8proc2 libutf8proc-dev libsentencepiece0 libsentencepiece-dev)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "${pkgs[@]}" >/dev/null)
mkdir -p "$dest"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest"; done
echo "gpudeps: unpacked ${pkgs[*]} into $dest"
