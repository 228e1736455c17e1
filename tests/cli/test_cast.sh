# ckpt cast end to end: torch's own bf16 file reproduced from f32, .bin sources, every dtype on
# the mixed edge checkpoint (only float tensors change), --keep/--only, config.json, side files,
# refusals, --device cuda without a GPU, --dry-run.
source "$(dirname "$0")/lib.sh"
st="python3 $(dirname "$0")/st_tensors.py"

# testdata/llama is llama-f32 cast by torch (.to(bfloat16)): same file, byte for byte.
"$ckpt" cast "$td/llama-f32" "$scratch/bf" --dtype bf16 -q || fail "cast f32->bf16"
cmp -s "$scratch/bf/model.safetensors" "$td/llama/model.safetensors" && pass "f32->bf16 equals torch's file" \
  || fail "f32->bf16 differs from torch's file"
# From a .bin and from sharded .bin: the same tensors.
"$ckpt" cast "$td/llama-bin" "$scratch/from-bin" --dtype bf16 -q && cmp -s "$scratch/from-bin/model.safetensors" \
  "$td/llama/model.safetensors" && pass "cast from .bin" || fail "cast from .bin"
"$ckpt" cast "$td/llama-bin-sharded" "$scratch/from-bins" --dtype f16 -q && "$ckpt" cast "$td/llama" "$scratch/f16" \
  --dtype f16 -q && $st equal "$scratch/from-bins" "$scratch/f16" >/dev/null && pass "cast from sharded .bin" \
  || fail "cast from sharded .bin"

# config.json: dtype updated (torch_dtype added), every other key and side file unchanged.
python3 - "$td/llama/config.json" "$scratch/f16/config.json" <<'PY' && pass "config.json dtype" || fail "config.json"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert b.pop("dtype") == "float16" and b.pop("torch_dtype") == "float16", b
a.pop("dtype")
assert a == b, (a, b)
PY
for f in tokenizer.json tokenizer_config.json generation_config.json chat_template.jinja; do
  cmp -s "$td/llama/$f" "$scratch/f16/$f" || fail "$f changed"
done
pass "side files carried unchanged"

# The mixed checkpoint: every dtype; float tensors change, the others keep their bytes.
for d in f16 bf16 f32; do
  "$ckpt" cast "$td/edge/edge.bin" "$scratch/edge-$d" --dtype "$d" -q || fail "edge.bin -> $d"
done
python3 - "$(dirname "$0")" "$td/edge/edge_ref.safetensors" "$scratch" <<'PY' && pass "edge.bin: only the float tensors changed, to each dtype" || fail "edge.bin dtypes/bytes"
import sys
sys.path.insert(0, sys.argv[1])
from st_tensors import read_file
ref, _ = read_file(sys.argv[2])
floats = {"F64", "F32", "F16", "BF16"}
for d, want in (("f16", "F16"), ("bf16", "BF16"), ("f32", "F32")):
    out, _ = read_file(f"{sys.argv[3]}/edge-{d}/model.safetensors")
    for name, (dt, shape, data) in out.items():
        rdt, rshape, rdata = ref[name]
        assert shape == rshape, name
        if rdt in floats:
            assert dt == want, (d, name, dt)
            if rdt == want:
                assert data == rdata, (d, name)
        else:
            assert (dt, data) == (rdt, rdata), (d, name)
PY

# --keep / --only.
"$ckpt" cast "$td/llama" "$scratch/keep" --dtype f32 --keep '*norm*' --keep lm_head.weight -q || fail "--keep"
python3 - "$(dirname "$0")" "$scratch/keep/model.safetensors" <<'PY' && pass "--keep" || fail "--keep dtypes"
import sys
sys.path.insert(0, sys.argv[1])
from st_tensors import read_file
t, _ = read_file(sys.argv[2])
for name, (dt, _, _) in t.items():
    kept = "norm" in name or name == "lm_head.weight"
    assert dt == ("BF16" if kept else "F32"), (name, dt)
PY
"$ckpt" cast "$td/llama" "$scratch/only" --dtype f16 --only 'model.layers.1.*' -q || fail "--only"
python3 - "$(dirname "$0")" "$scratch/only/model.safetensors" <<'PY' && pass "--only" || fail "--only dtypes"
import sys
sys.path.insert(0, sys.argv[1])
from st_tensors import read_file
t, _ = read_file(sys.argv[2])
for name, (dt, _, _) in t.items():
    assert dt == ("F16" if name.startswith("model.layers.1.") else "BF16"), (name, dt)
PY

# Sharding, --dry-run, summary.
"$ckpt" cast "$td/llama" "$scratch/shards" --dtype f32 --max-shard-size 150KB -q && \
  [ -f "$scratch/shards/model.safetensors.index.json" ] && pass "sharded output" || fail "sharded output"
"$ckpt" cast "$td/llama" "$scratch/dry" --dtype f16 --dry-run | python3 -c '
import json, sys
p = json.load(sys.stdin)
ops = {t["producer"]["op"] for f in p["files"] for t in f["tensors"]}
assert ops == {"cast BF16->F16"}, ops
assert p["notes"]["cast_tensors"] == 21' && [ ! -e "$scratch/dry" ] && pass "--dry-run plan" || fail "--dry-run"
line=$("$ckpt" cast "$td/llama" "$scratch/sum" --dtype f16 2>&1 >/dev/null)
grep -q "ckpt cast: 21 tensors" <<<"$line" && pass "summary line" || fail "summary: $line"

# Refusals: one line, non-zero, nothing written.
expect_error 2 "dtype must be bf16, f16, f32 or auto" "$ckpt" cast "$td/llama" "$scratch/x1" --dtype int8
expect_error 2 "dtype must be bf16, f16, f32 or auto" "$ckpt" cast "$td/llama" "$scratch/x1" --dtype f64
expect_error 2 "keep '\*nothing\*' matches no tensor" "$ckpt" cast "$td/llama" "$scratch/x2" --dtype f16 --keep '*nothing*'
expect_error 2 "device must be cpu or cuda" "$ckpt" cast "$td/llama" "$scratch/x3" --dtype f16 --device tpu
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect_error 1 "cuda" "$ckpt" cast "$td/llama" "$scratch/x4" --dtype f16 --device cuda
fi
expect_error 1 "destination_exists" "$ckpt" cast "$td/llama" "$scratch/f16" --dtype f16
[ ! -e "$scratch/x1" ] && [ ! -e "$scratch/x2" ] && [ ! -e "$scratch/x3" ] && [ ! -e "$scratch/x4" ] \
  && pass "refusals wrote nothing" || fail "refusal left output"
# A quantized checkpoint: scales stay in their format's dtype; only unquantized tensors change.
"$ckpt" quantize "$td/llama" "$scratch/ct-fp8" --fp8 --scheme channel -q || fail "quantize for cast"
"$ckpt" cast "$scratch/ct-fp8" "$scratch/ct-fp8-f16" --dtype f16 -q || fail "cast of a quantized checkpoint"
python3 - "$scratch/ct-fp8-f16/model.safetensors" <<'PY' && pass "cast keeps scales of quantized Linears" || fail "cast touched scales"
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
p = "model.layers.0.self_attn.q_proj"
assert h[p + ".weight_scale"]["dtype"] == "BF16" and h[p + ".weight"]["dtype"] == "F8_E4M3", h[p + ".weight_scale"]
assert h["model.norm.weight"]["dtype"] == "F16" and h["lm_head.weight"]["dtype"] == "F16"
PY
finish
