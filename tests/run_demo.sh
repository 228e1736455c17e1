#!/usr/bin/env bash
# `make run`: the main job on the bundled test data, each step's output under out/.
set -euo pipefail
ckpt=${1:?usage: run_demo.sh path/to/ckpt}
root=$(cd "$(dirname "$0")/.." && pwd)
td=$root/testdata
out=$root/out
rm -rf "$out"
mkdir -p "$out"
step() { echo; echo "\$ ckpt $*"; "$ckpt" "$@"; }

step inspect "$td/llama-sharded"
step rechunk "$td/llama-sharded" "$out/llama-rechunked" --max-shard-size 100KB
step inspect "$out/llama-rechunked"
echo
echo "outputs are in $out"
