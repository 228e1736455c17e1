#!/usr/bin/env bash
# GPU machine: `ckpt validate --against` on the CUDA forwards (phase "against (cuda)") gives the
# verdicts the CPU reference gives in tests/cli/test_forward.sh: re-sharded and FP8 outputs pass,
# planted faults (a swapped pair of rows in one rank's q_proj, an FP8 scale with a flipped exponent
# bit, an FP8 Linear left unscaled, one MoE expert's scale flipped) exit 1 naming the same layer,
# Linear and rank; CKPT_AGAINST_DEVICE=cpu runs the reference ("against (cpu)").
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
st_edit=$(dirname "$0")/../support/st_edit.py

# --cpu-only skips the GPU load/warm-up phases; --against-device cuda still runs the comparison there.
against() { set +e; "$ckpt" validate "$1" --against "$2" --cpu-only --against-device cuda --samples 2 --seq-len 16 "${@:3}" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e; echo $rc; }
expect_pass() {
  local rc; rc=$(against "$@")
  [ "$rc" = 0 ] || { cat "$tmp/out" "$tmp/err"; fail "validate $1 --against $2 on cuda: exit $rc, want 0"; }
  grep -q "against (cuda)" "$tmp/out" || { cat "$tmp/out"; fail "$1: the comparison did not run on cuda"; }
}
expect_located() {  # DST SRC PATTERN...
  local dst=$1 src=$2; shift 2
  local rc; rc=$(against "$dst" "$src")
  [ "$rc" = 1 ] || { cat "$tmp/out" "$tmp/err"; fail "$dst on cuda: exit $rc, want 1"; }
  for p in "$@"; do grep "check failed: against" "$tmp/err" | grep -q -- "$p" || { cat "$tmp/out" "$tmp/err"; fail "$dst on cuda: no failure line matching '$p'"; }; done
}

"$ckpt" shard --tp 2 "$td/llama" "$tmp/tp2" -q
"$ckpt" quantize --fp8 "$td/llama" "$tmp/fp8" -q
expect_pass "$tmp/tp2" "$td/llama"
expect_pass "$tmp/fp8" "$td/llama" --generate 4 --min-top1 0.8
set +e; CKPT_AGAINST_DEVICE=cpu "$ckpt" validate "$tmp/fp8" --against "$td/llama" --cpu-only --samples 2 --seq-len 16 --min-top1 0.8 >"$tmp/out" 2>&1; set -e
grep -q "against (cpu)" "$tmp/out" || { cat "$tmp/out"; fail "CKPT_AGAINST_DEVICE=cpu did not run the reference"; }

cp -r "$tmp/tp2" "$tmp/tp2-swap" && rm -f "$tmp/tp2-swap"/ckpt-manifest.json "$tmp/tp2-swap"/rank-*/ckpt-manifest.json
python3 "$st_edit" swaprows "$tmp/tp2-swap/rank-1/model.safetensors" model.layers.1.self_attn.q_proj.weight 3 9
expect_located "$tmp/tp2-swap" "$td/llama" "layer 1 self_attn.q_proj" "rank-1"

cp -r "$tmp/fp8" "$tmp/fp8-flip" && rm -f "$tmp/fp8-flip/ckpt-manifest.json"
python3 "$st_edit" xor "$tmp/fp8-flip/model.safetensors" model.layers.0.mlp.up_proj.weight_scale 2 0x80
expect_located "$tmp/fp8-flip" "$td/llama" "layer 0 mlp.up_proj" "model.layers.0.mlp.up_proj.weight"

cp -r "$tmp/fp8" "$tmp/fp8-unscaled" && rm -f "$tmp/fp8-unscaled/ckpt-manifest.json"
python3 "$st_edit" setf32 "$tmp/fp8-unscaled/model.safetensors" model.layers.1.self_attn.o_proj.weight_scale 1.0
expect_located "$tmp/fp8-unscaled" "$td/llama" "layer 1 self_attn.o_proj"

"$ckpt" quantize --fp8 "$td/mixtral" "$tmp/mx8" -q && rm -f "$tmp/mx8/ckpt-manifest.json"
expect_pass "$tmp/mx8" "$td/mixtral" --min-top1 0.8
python3 "$st_edit" xor "$tmp/mx8/model.safetensors" model.layers.1.block_sparse_moe.experts.2.w1.weight_scale 2 0x80
expect_located "$tmp/mx8" "$td/mixtral" "layer 1 block_sparse_moe.experts.2" "model.layers.1.block_sparse_moe.experts.2"
echo "check_against: all passed"
