#!/usr/bin/env bash
# `make run`: the main job on the bundled test data — a PyTorch .bin checkpoint made
# deployment-ready step by step (convert, cast, quantize, shard, rechunk), each output proven
# with validate (CPU checks here; the GPU phases run too where there is a GPU). Outputs: out/.
set -euo pipefail
ckpt=${1:?usage: run_demo.sh path/to/ckpt}
root=$(cd "$(dirname "$0")/.." && pwd)
td=$root/testdata
out=$root/out
rm -rf "$out"
mkdir -p "$out"
step() { echo; echo "\$ ckpt $*"; "$ckpt" "$@"; }
validate() {
  echo; echo "\$ ckpt validate $1"
  local code=0
  "$ckpt" validate "$1" || code=$?
  # 3: every CPU check passed and there is no GPU for the GPU phases.
  if [ "$code" != 0 ] && [ "$code" != 3 ]; then exit "$code"; fi
}

step inspect "$td/llama-bin-sharded"
step convert "$td/llama-bin-sharded" "$out/llama"
validate "$out/llama"
step cast "$out/llama" "$out/llama-f16" --dtype f16 --keep '*norm*'
validate "$out/llama-f16"
# 8x8 blocks: the tiny model's per-rank slices at --tp 2 (8 rows of k_proj) hold no whole 128x128 block,
# which shard rightly refuses as vLLM's block-FP8 loader would.
step quantize "$out/llama" "$out/llama-fp8-block" --fp8 --scheme block --block 8x8
validate "$out/llama-fp8-block"
step shard "$out/llama-fp8-block" "$out/llama-fp8-block-tp2" --tp 2
validate "$out/llama-fp8-block-tp2"
step merge "$out/llama-fp8-block-tp2" "$out/llama-fp8-block-merged"
step rechunk "$out/llama-fp8-block-merged" "$out/llama-fp8-block-rechunked" --max-shard-size 100KB
validate "$out/llama-fp8-block-rechunked"
step inspect "$out/llama-fp8-block-rechunked"
echo
echo "outputs are in $out"
