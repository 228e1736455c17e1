#!/usr/bin/env bash
# GPU machine: the batch-1 decode step of an 8B-shaped model (Llama-3-8B dimensions: 32 layers,
# hidden 4096, intermediate 14336, 32 heads, 8 KV heads, vocab 128256) under its CUDA graph,
# against the floor = weight bytes / HBM read bandwidth measured in the same run (issue 15; goal
# <= 1.3x), for the bf16 checkpoint and its FP8 (per-tensor) and INT4 (GPTQ g128, plain and in
# the Marlin layout) outputs. Writes ~16 + 8 + 2 x 4.5 GB under
# $TMPDIR (removed after). CKPT_DECODE_LAYERS=N uses N layers instead of 32 (the ratio is per
# layer; say so when quoting it).
# Usage: gpu_decode.sh path/to/ckpt
set -euo pipefail
ckpt=$(realpath "${1:?usage: gpu_decode.sh path/to/ckpt}")
build=$(dirname "$ckpt")
layers=${CKPT_DECODE_LAYERS:-32}
dir=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-decode.XXXXXX")
out=$(mktemp)
trap 'rm -rf "$dir" "$out"' EXIT
"$build/tests/ckpt_make_synthetic" "$dir/bf16" --layers "$layers" --hidden 4096 --intermediate 14336 --heads 32 \
  --kv-heads 8 --vocab 128256 --dtype bf16
"$ckpt" quantize --fp8 --scheme tensor --device cuda "$dir/bf16" "$dir/fp8" -q
"$ckpt" quantize --int4 --device cuda "$dir/bf16" "$dir/int4" -q
"$ckpt" quantize --int4 --layout marlin --device cuda "$dir/bf16" "$dir/int4-marlin" -q
CKPT_BENCH=1 CKPT_BENCH_MODELS="$dir/bf16:$dir/fp8:$dir/int4:$dir/int4-marlin" "$build/tests/bench_gpu_decode" \
  --gtest_filter='GpuDecodeBench.*' | tee "$out" | grep BENCH
status=0
while read -r line; do
  ratio=$(sed -E 's/.* ratio ([0-9.]+).*/\1/' <<<"$line")
  if ! awk -v r="$ratio" 'BEGIN{exit !(r <= 1.3)}'; then
    echo "decode step ${line#BENCH decode }: above the goal of 1.3x the floor"
    status=1
  fi
done < <(grep -E '^BENCH decode .* ratio ' "$out")
exit $status
