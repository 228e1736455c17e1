#!/usr/bin/env bash
# ckpt forward / perplexity / validate --against on testdata: good outputs (re-sharded, cast,
# FP8) pass their thresholds; planted faults are caught AND located — a swapped pair of rows in
# one rank's q_proj (layer, Linear and rank named), one FP8 scale with a flipped exponent bit, an
# FP8 Linear left unscaled (scale 1.0); each exits 1 with a line naming layer and Linear.
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
st_edit=$(dirname "$0")/../support/st_edit.py

# forward: top-5 per position, logits file, greedy generation; the ids may come from a file.
"$ckpt" forward "$td/llama" --ids 1,5,9 --generate 4 --logits "$tmp/logits.safetensors" >"$tmp/out"
grep -q "next:" "$tmp/out" || fail "forward printed no top-5"
grep -qE "^generated: [0-9]+ [0-9]+ [0-9]+ [0-9]+$" "$tmp/out" || { cat "$tmp/out"; fail "no 4 generated ids"; }
python3 - "$tmp/logits.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
assert h["logits"]["shape"] == [1, 3, 256] and h["logits"]["dtype"] == "F32", h
assert h["input_ids"]["shape"] == [1, 3], h
PY
echo '[[1,5,9,4],[1,7,7,2]]' >"$tmp/ids.json"
"$ckpt" forward "$td/qwen3-moe" --ids "$tmp/ids.json" >"$tmp/out"
grep -q "sequence 1" "$tmp/out" || fail "two sequences from JSON not run"
# A TP output's logits equal the unsharded ones (the same greedy ids).
"$ckpt" shard --tp 2 "$td/llama" "$tmp/tp2" -q
"$ckpt" forward "$td/llama" --ids 1,5,9 --generate 6 | grep generated >"$tmp/g1"
"$ckpt" forward "$tmp/tp2" --ids 1,5,9 --generate 6 | grep generated >"$tmp/g2"
cmp -s "$tmp/g1" "$tmp/g2" || fail "TP-2 output generates differently"
# Errors: one line, exit 1 or 2.
set +e
"$ckpt" forward "$td/llama" --ids 1,999 >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "outside the vocabulary" "$tmp/err" || { cat "$tmp/err"; fail "id 999: exit $rc"; }
set +e
"$ckpt" forward "$td/deepseek-v3" --ids 1,2 >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "multi-head latent attention" "$tmp/err" || { cat "$tmp/err"; fail "deepseek: exit $rc"; }

# A slice of the trained model's held-out ids (2 x 96 as .npy; the whole file takes the float64
# reference too long for make test).
python3 - "$td/llama-trained/heldout.safetensors" "$tmp/heldout.npy" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
s, e = h["input_ids"]["data_offsets"]; cols = h["input_ids"]["shape"][1]
rows = [b[8 + n + s + r * cols * 8: 8 + n + s + r * cols * 8 + 96 * 8] for r in range(2)]
hdr = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 96), }"
hdr += " " * (-(10 + len(hdr) + 1) % 64) + "\n"
open(sys.argv[2], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + b"".join(rows))
PY
# perplexity (llama.cpp chunking): 3 chunks of 64 of the 192 ids, the second half of each scored.
"$ckpt" perplexity "$td/llama-trained" --ids "$tmp/heldout.npy" --seq-len 64 --json >"$tmp/ppl.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert 1 < r['perplexity'] < 1000 and r['chunks'] == 3 and r['scored_tokens'] == 96, r" "$tmp/ppl.json"

# validate --against: exit code, stderr in $tmp/err, stdout in $tmp/out. The comparison runs where
# CKPT_AGAINST_DEVICE says (read by ckpt; unset: the CPU reference, as --cpu-only makes auto
# choose): tests/gpu/check_against.sh runs this script with cuda on the GPU machine.
device=${CKPT_AGAINST_DEVICE:-cpu}
against() { set +e; "$ckpt" validate "$1" --against "$2" --cpu-only --samples 2 --seq-len 16 "${@:3}" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e; echo $rc; }
expect_pass() {
  local rc; rc=$(against "$@")
  [ "$rc" = 0 ] || { cat "$tmp/out" "$tmp/err"; fail "validate $1 --against $2: exit $rc, want 0"; }
  grep -q "against ($device)" "$tmp/out" || { cat "$tmp/out"; fail "$1: the comparison did not run on $device"; }
}
expect_located() {  # DST SRC PATTERN...: exit 1, a failure line matching every pattern
  local dst=$1 src=$2; shift 2
  local rc; rc=$(against "$dst" "$src")
  [ "$rc" = 1 ] || { cat "$tmp/out" "$tmp/err"; fail "$dst: exit $rc, want 1"; }
  for p in "$@"; do grep "check failed: against" "$tmp/err" | grep -q -- "$p" || { cat "$tmp/out" "$tmp/err"; fail "$dst: no failure line matching '$p'"; }; done
}

"$ckpt" quantize --fp8 "$td/llama" "$tmp/fp8" -q
"$ckpt" cast "$td/llama" "$tmp/f16" --dtype f16 -q
expect_pass "$tmp/tp2" "$td/llama"
grep -q "same weights" "$tmp/out" || fail "tp2 not recognised as the same weights"
expect_pass "$tmp/f16" "$td/llama"
grep -q "thresholds (cast" "$tmp/out" || fail "f16 not judged as a cast"
# The random tiny model's logits are nearly flat (near-ties decide its top-1): its FP8 output
# passes on KL with the top-1 bound relaxed; the trained model passes the defaults.
rc=$(against "$tmp/fp8" "$td/llama" --generate 4)
[ "$rc" = 1 ] && grep -q "top-1 agreement" "$tmp/err" || { cat "$tmp/out" "$tmp/err"; fail "fp8 tiny: default top-1 bound not applied (exit $rc)"; }
expect_pass "$tmp/fp8" "$td/llama" --generate 4 --min-top1 0.8
grep -q "thresholds (fp8" "$tmp/out" || fail "fp8 thresholds not printed"
grep -q "top-1 >= 0.8," "$tmp/out" || fail "--min-top1 not applied"
"$ckpt" quantize --fp8 "$td/llama-trained" "$tmp/trained-fp8" -q
expect_pass "$tmp/trained-fp8" "$td/llama-trained" --ids "$tmp/heldout.npy" --generate 4

# Planted faults (manifests removed: the checksums would catch the edits before the forward).
cp -r "$tmp/tp2" "$tmp/tp2-swap" && rm -f "$tmp/tp2-swap"/ckpt-manifest.json "$tmp/tp2-swap"/rank-*/ckpt-manifest.json
python3 "$st_edit" swaprows "$tmp/tp2-swap/rank-1/model.safetensors" model.layers.1.self_attn.q_proj.weight 3 9
expect_located "$tmp/tp2-swap" "$td/llama" "layer 1 self_attn.q_proj" "rank-1"

cp -r "$tmp/fp8" "$tmp/fp8-flip" && rm -f "$tmp/fp8-flip/ckpt-manifest.json"
python3 "$st_edit" xor "$tmp/fp8-flip/model.safetensors" model.layers.0.mlp.up_proj.weight_scale 2 0x80
expect_located "$tmp/fp8-flip" "$td/llama" "layer 0 mlp.up_proj" "model.layers.0.mlp.up_proj.weight"

cp -r "$tmp/fp8" "$tmp/fp8-unscaled" && rm -f "$tmp/fp8-unscaled/ckpt-manifest.json"
python3 "$st_edit" setf32 "$tmp/fp8-unscaled/model.safetensors" model.layers.1.self_attn.o_proj.weight_scale 1.0
expect_located "$tmp/fp8-unscaled" "$td/llama" "layer 1 self_attn.o_proj"

# INT4 (GPTQ, asymmetric, g128) of the trained model: every zero point one lower than written, as a
# reader that takes GPTQ's v1 zeros (stored zero - 1) for v2 computes them. The correct checkpoint
# passes with the top-1 bound relaxed (RTN of this 128-wide model agrees on ~0.70-0.77 of the
# positions, below the 0.8 default meant for deployable models; KL stays under its default);
# the shifted one is far off (top-1 ~0) and located at the first Linear the shift meets.
"$ckpt" quantize "$td/llama-trained" "$tmp/gq" --int4 --format gptq --asym -q && rm -f "$tmp/gq/ckpt-manifest.json"
expect_pass "$tmp/gq" "$td/llama-trained" --ids "$tmp/heldout.npy" --min-top1 0.6
grep -q "thresholds (int4" "$tmp/out" || fail "int4 thresholds not printed"
cp -r "$tmp/gq" "$tmp/gq-v2"
python3 - "$tmp/gq-v2/model.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
for name, t in h.items():
    if name.endswith(".qzeros"):
        s, e = t["data_offsets"]
        for i in range(8 + n + s, 8 + n + e):
            b[i] = max((b[i] & 15) - 1, 0) | max((b[i] >> 4) - 1, 0) << 4
open(sys.argv[1], "wb").write(b)
PY
rc=$(against "$tmp/gq-v2" "$td/llama-trained" --ids "$tmp/heldout.npy" --min-top1 0.6)
[ "$rc" = 1 ] && grep "check failed: against" "$tmp/err" | grep -q "layer 0 self_attn" || { cat "$tmp/out" "$tmp/err"; fail "int4 zero points shifted by one: not located (exit $rc)"; }

# AWQ's smoothing, made exact: the first 128 rows of each up_proj times 1/4 and the same columns
# of down_proj (its first g128 group) times 4 — powers of two, exact in bf16, and RTN's codes do
# not change with them — then INT4: the same model and the same quantization error as RTN of the
# source, but up_proj's own output is off by the per-channel scale. Judged up to a positive scale
# per channel (as AWQ outputs need), the check passes; judged as is, up_proj's error is ~0.5.
mkdir -p "$tmp/smooth" && cp "$td/llama-trained"/*.json "$tmp/smooth/"
python3 - "$td/llama-trained/model.safetensors" "$tmp/smooth/model.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
def times_pow2(i, e):  # bf16 element at byte i times 2**e (nonzero normal values stay normal here)
    v = struct.unpack_from("<H", b, i)[0]
    if v & 0x7F80: struct.pack_into("<H", b, i, v + (e << 7))
for name, t in h.items():
    if name == "__metadata__": continue
    s = 8 + n + t["data_offsets"][0]
    rows, cols = t["shape"] if len(t["shape"]) == 2 else (0, 0)
    if name.endswith("mlp.up_proj.weight"):
        for r in range(128):
            for c in range(cols): times_pow2(s + 2 * (r * cols + c), -2)
    elif name.endswith("mlp.down_proj.weight"):
        for r in range(rows):
            for c in range(128): times_pow2(s + 2 * (r * cols + c), 2)
open(sys.argv[2], "wb").write(b)
PY
"$ckpt" quantize "$tmp/smooth" "$tmp/smooth-q" --int4 --format gptq --asym -q && rm -f "$tmp/smooth-q/ckpt-manifest.json"
expect_pass "$tmp/smooth-q" "$td/llama-trained" --ids "$tmp/heldout.npy" --min-top1 0.6

# MoE: one expert's FP8 scale off by 2x is located to that expert.
"$ckpt" quantize --fp8 "$td/mixtral" "$tmp/mx8" -q && rm -f "$tmp/mx8/ckpt-manifest.json"
expect_pass "$tmp/mx8" "$td/mixtral" --min-top1 0.8
python3 "$st_edit" xor "$tmp/mx8/model.safetensors" model.layers.1.block_sparse_moe.experts.2.w1.weight_scale 2 0x80
expect_located "$tmp/mx8" "$td/mixtral" "layer 1 block_sparse_moe.experts.2" "model.layers.1.block_sparse_moe.experts.2"

# Not the same model: refused with the reason.
rc=$(against "$tmp/fp8" "$td/qwen3")
[ "$rc" = 1 ] && grep -q "not the same model" "$tmp/err" || { cat "$tmp/err"; fail "qwen3 vs llama: exit $rc"; }
echo "all passed"
