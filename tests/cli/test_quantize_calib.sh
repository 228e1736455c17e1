# ckpt quantize --int4 --method gptq|awq end to end on the trained Llama: refusals say what to pass
# and write nothing; a small GPTQ run writes the GPTQ layout and reports per-Linear errors beside
# RTN's with the damping used; AWQ writes smoothed norms in the AWQ layout.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

src=$td/llama-trained
cal=$td/calib/llama-trained-docstrings.txt

expect_error 2 "needs calibration data: --calib FILE" "$ckpt" quantize "$src" "$scratch/none" --int4 --method gptq
[ -e "$scratch/none" ] && fail "refused run left $scratch/none"
expect_error 2 "applies to --int4" "$ckpt" quantize "$src" "$scratch/none" --fp8 --method gptq --calib "$cal"
expect_error 2 "--act-order must be static or none" "$ckpt" quantize "$src" "$scratch/none" --int4 --method gptq --calib "$cal" --act-order group
expect_error 2 "fewer than one sequence" "$ckpt" quantize "$src" "$scratch/none" --int4 --method gptq --calib "$src/heldout.safetensors" --seq-len 100000
expect_error 2 "calibration file must be token ids" "$ckpt" quantize "$src" "$scratch/none" --int4 --method gptq --calib "$src/config.json.bak"

"$ckpt" quantize "$src" "$scratch/gptq" --int4 --method gptq --calib "$cal" --samples 4 --seq-len 64 --json -q >"$scratch/g.json" \
  || fail "gptq run"
if python3 - "$scratch/g.json" "$scratch/gptq" <<'PY'
import json, struct, sys
r = json.load(open(sys.argv[1]))["report"]
c = r["calibration"]
assert c["method"] == "gptq" and c["samples"] == 4 and c["seq_len"] == 64 and c["linears"] == 28, c
t = r["tensors"][0]
assert {"output_error", "rtn_output_error", "damp", "rtn_fallback", "dead_inputs"} <= set(t), t
assert c["linears_better_than_rtn"] >= 20, c
f = open(sys.argv[2] + "/model.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
p = "model.layers.0.mlp.down_proj"
assert h[p + ".qweight"]["shape"] == [384 // 8, 128] and h[p + ".g_idx"]["shape"] == [384], h[p + ".qweight"]
q = json.load(open(sys.argv[2] + "/config.json"))["quantization_config"]
assert q["quant_method"] == "gptq" and q["desc_act"] is False, q
PY
then pass "gptq: report has per-Linear errors vs RTN and damping; GPTQ layout with trivial g_idx"; else fail "gptq report/layout"; fi

"$ckpt" quantize "$src" "$scratch/awq" --int4 --method awq --calib "$src/heldout.safetensors" --samples 2 --seq-len 128 \
  --json -q >"$scratch/a.json" || fail "awq run"
if python3 - "$src" "$scratch/awq" "$scratch/a.json" <<'PY'
import json, struct, sys
def header(d):
    f = open(d + "/model.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]; return json.loads(f.read(n)), f, 8 + n
hs, fs, bs = header(sys.argv[1]); hd, fd, bd = header(sys.argv[2])
def data(h, f, base, name):
    a, b = h[name]["data_offsets"]; f.seek(base + a); return f.read(b - a)
# A norm is smoothed exactly where its pair's search kept a scale other than s = 1 (ratio 0
# without duo scaling), and the search's loss of that scale is no worse than s = 1's.
tensors = {t["tensor"]: t for t in json.load(open(sys.argv[3]))["report"]["tensors"]}
smoothed = 0
for i in range(4):
    for norm, lin in (("input_layernorm", "self_attn.q_proj"), ("post_attention_layernorm", "mlp.gate_proj")):
        name = f"model.layers.{i}.{norm}.weight"
        t = tensors[f"model.layers.{i}.{lin}.weight"]
        assert t["awq_loss"] <= t["awq_identity_loss"], t
        scaled = t["awq_duo"] or t["awq_ratio"] != 0
        assert hd[name]["dtype"] == "BF16"
        assert (data(hs, fs, bs, name) != data(hd, fd, bd, name)) == scaled, (name, t)
        smoothed += scaled
assert smoothed > 0, "no norm smoothed"
assert "model.layers.0.self_attn.q_proj.qzeros" in hd
assert json.load(open(sys.argv[2] + "/config.json"))["quantization_config"]["quant_method"] == "awq"
PY
then pass "awq: norms smoothed where the search kept a scale, AWQ layout"; else fail "awq output"; fi
finish
