# ckpt quantize --fp8 end to end: each scheme writes the tensors and config its engines expect,
# the --json report carries per-tensor errors and bytes before/after, and bad requests fail with
# one clear line and no output.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

# header_of DIR: the model.safetensors header as JSON (standard library only).
header_of() {
  python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.dumps(json.loads(f.read(n))))' "$1/model.safetensors"
}
# check DIR PYTHON_EXPR: evaluates an expression over h (the header) and q (quantization_config).
check() {
  local dir=$1 expr=$2 what=$3
  if python3 - "$dir" "$expr" <<'EOF'
import json, struct, sys
d, expr = sys.argv[1], sys.argv[2]
f = open(d + "/model.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
q = json.load(open(d + "/config.json"))["quantization_config"]
sys.exit(0 if eval(expr) else 1)
EOF
  then pass "$what"; else fail "$what"; fi
}

src=$td/llama
p=model.layers.0.self_attn.q_proj

"$ckpt" quantize "$src" "$scratch/tensor" --fp8 -q || fail "per-tensor run"
check "$scratch/tensor" "h['$p.weight']['dtype']=='F8_E4M3' and h['$p.weight_scale']['dtype']=='F32' and h['$p.weight_scale']['shape']==[] and q=={'quant_method':'fp8','activation_scheme':'dynamic','ignored_layers':['lm_head'],'modules_to_not_convert':['lm_head']}" \
  "tensor: F8_E4M3 weight, F32 scalar weight_scale, quant_method fp8"
check "$scratch/tensor" "h['lm_head.weight']['dtype']=='BF16' and h['model.embed_tokens.weight']['dtype']=='BF16' and h['model.norm.weight']['dtype']=='BF16'" \
  "tensor: lm_head, embeddings and norms untouched"

"$ckpt" quantize "$src" "$scratch/block" --fp8 --scheme block --block 128x128 -q || fail "block run"
check "$scratch/block" "h['model.layers.0.mlp.up_proj.weight_scale_inv']['shape']==[1,1] and h['model.layers.0.mlp.up_proj.weight_scale_inv']['dtype']=='F32' and q['weight_block_size']==[128,128] and q['activation_scheme']=='dynamic'" \
  "block: weight_scale_inv F32 [ceil(N/128), ceil(K/128)] and weight_block_size"

"$ckpt" quantize "$src" "$scratch/channel" --fp8 --scheme channel -q || fail "channel run"
check "$scratch/channel" "h['model.layers.0.mlp.up_proj.weight_scale']['shape']==[128,1] and h['model.layers.0.mlp.up_proj.weight_scale']['dtype']=='BF16' and q['format']=='float-quantized' and list(q['config_groups'])==['group_0'] and q['ignore']==['lm_head']" \
  "channel: compressed-tensors, [N,1] bf16 scales, group_0, ignore list"

"$ckpt" quantize "$src" "$scratch/ign" --fp8 --ignore '*.0.mlp.*' --ignore 'model.layers.1.self_attn.v_proj' -q || fail "ignore run"
check "$scratch/ign" "q['ignored_layers']==['lm_head','model.layers.0.mlp.down_proj','model.layers.0.mlp.gate_proj','model.layers.0.mlp.up_proj','model.layers.1.self_attn.k_proj','model.layers.1.self_attn.q_proj','model.layers.1.self_attn.v_proj'] and h['model.layers.1.self_attn.q_proj.weight']['dtype']=='BF16'" \
  "--ignore globs; ignoring v_proj leaves its q/k group unquantized too"

# --json: the per-tensor report and the byte summary.
"$ckpt" quantize "$src" "$scratch/json" --fp8 --scheme block --json >"$scratch/report.json" || fail "json run"
if python3 - "$scratch/report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["report"]
assert len(r["tensors"]) == 14, r
for t in r["tensors"]:
    assert 0 < t["relative_error"] < 0.1 and t["max_abs_error"] > 0, t
    assert "scale" in t or ("scale_min" in t and "scale_max" in t), t
assert r["bytes_after"] < r["bytes_before"] == 205440, r
EOF
then pass "--json report: per-tensor scale(s), relative and max abs error, bytes before/after"; else fail "--json report"; fi

"$ckpt" quantize "$src" "$scratch/dry" --fp8 --dry-run >"$scratch/plan.json" || fail "dry run"
grep -q '"fp8 e4m3fn codes"' "$scratch/plan.json" && [ ! -e "$scratch/dry" ] && pass "--dry-run prints the plan, writes nothing" || fail "--dry-run"

# Sharding reads the block size from the one quantization model: 16x16 compressed-tensors blocks
# split in units of 16 (issue 13: this was refused as "not a multiple of the quantization unit 128").
# llama-trained: every per-rank slice at --tp 2 is a multiple of 16 rows and columns.
"$ckpt" quantize "$td/llama-trained" "$scratch/ct16" --fp8 --scheme block --block 16x16 --format compressed-tensors -q || fail "16x16 run"
if "$ckpt" shard "$scratch/ct16" "$scratch/ct16-tp2" --tp 2 -q && "$ckpt" merge "$scratch/ct16-tp2" "$scratch/ct16-back" -q &&
  cmp -s "$scratch/ct16-back/model.safetensors" "$scratch/ct16/model.safetensors"; then
  pass "16x16 compressed-tensors blocks: shard --tp 2 and merge back byte for byte"
else
  fail "16x16 compressed-tensors blocks do not shard --tp 2 and merge back"
fi

# --int4: each format's tensors and config as GPTQModel / AutoAWQ / llm-compressor write them.
tr=$td/llama-trained
"$ckpt" quantize "$tr" "$scratch/gptq" --int4 -q || fail "int4 gptq run"
check "$scratch/gptq" "h['$p.qweight']['dtype']=='I32' and h['$p.qweight']['shape']==[16,128] and h['$p.qzeros']['shape']==[1,16] and h['$p.scales']['dtype']=='F16' and h['$p.scales']['shape']==[1,128] and h['$p.g_idx']['shape']==[128] and '$p.weight' not in h and q['quant_method']=='gptq' and q['bits']==4 and q['group_size']==128 and q['sym'] and not q['desc_act'] and q['checkpoint_format']=='gptq' and json.load(open('$scratch/gptq/quantize_config.json'))==q" \
  "int4 gptq: qweight [K/8,N], qzeros, F16 scales, g_idx; quantize_config.json equals quantization_config"
"$ckpt" quantize "$tr" "$scratch/awq" --int4 --format awq --asym --group-size 64 -q || fail "int4 awq run"
check "$scratch/awq" "h['$p.qweight']['shape']==[128,16] and h['$p.qzeros']['shape']==[2,16] and h['$p.scales']['shape']==[2,128] and q=={'quant_method':'awq','zero_point':True,'group_size':64,'bits':4,'version':'gemm','modules_to_not_convert':['lm_head']}" \
  "int4 awq: qweight [K,N/8], zeros, AutoAWQ config"
"$ckpt" quantize "$tr" "$scratch/ct4" --int4 --format compressed-tensors --asym --group-size 32 -q || fail "int4 ct run"
check "$scratch/ct4" "h['$p.weight_packed']['shape']==[128,16] and h['$p.weight_scale']['dtype']=='BF16' and h['$p.weight_scale']['shape']==[128,4] and h['$p.weight_shape']['dtype']=='I64' and h['$p.weight_zero_point']['shape']==[16,4] and q['format']=='pack-quantized' and q['config_groups']['group_0']['weights']['num_bits']==4 and q['config_groups']['group_0']['weights']['symmetric']==False and q['config_groups']['group_0']['weights']['strategy']=='group'" \
  "int4 compressed-tensors: weight_packed, weight_scale, weight_shape, weight_zero_point, pack-quantized W4A16_ASYM"
"$ckpt" quantize "$tr" "$scratch/gptq-asym" --int4 --asym -q && check "$scratch/gptq-asym" "q['checkpoint_format']=='gptq_v2' and not q['sym']" \
  "int4 gptq --asym is written as gptq_v2 (v1 cannot store a zero of 0)"
"$ckpt" quantize "$tr" "$scratch/x" --int4 --json > "$scratch/int4.json" 2>/dev/null && python3 - "$scratch/int4.json" <<'PY' \
  && pass "int4 --json: per-tensor errors and the Marlin TP table" || fail "int4 --json report"
import json, sys
r = json.load(open(sys.argv[1]))["report"]
assert len(r["tensors"]) == 28 and all(0 < t["relative_error"] < 0.2 and t["max_abs_error"] > 0 for t in r["tensors"])
tp = {row["tp"]: row for row in r["tp_compatibility"]}
assert tp[1]["marlin_ok"] and not tp[2]["marlin_ok"], tp
assert tp[2]["first_failure"]["reason"] == "in_features per rank 192 is not a multiple of 128", tp[2]
PY
# (output captured first: grep -q closing the pipe early would fail the pipeline under pipefail)
inspected=$("$ckpt" inspect "$scratch/awq") && grep -q "^quantization int4 awq asym group 64$" <<<"$inspected" && pass "inspect shows the scheme" || fail "inspect scheme"
# shard / merge of INT4 (group 32 so that K/2 stays whole groups): byte for byte back.
"$ckpt" quantize "$tr" "$scratch/g32" --int4 --group-size 32 -q && "$ckpt" shard "$scratch/g32" "$scratch/g32-tp2" --tp 2 -q &&
  "$ckpt" merge "$scratch/g32-tp2" "$scratch/g32-back" -q && cmp -s "$scratch/g32-back/model.safetensors" "$scratch/g32/model.safetensors" \
  && pass "int4 gptq shard --tp 2 and merge back byte for byte" || fail "int4 shard/merge"
expect_error 2 "has zero points" "$ckpt" quantize "$tr" "$scratch/x7" --int4 --format awq --sym
expect_error 2 "--group-size must be positive or -1" "$ckpt" quantize "$tr" "$scratch/x8" --int4 --group-size 0
expect_error 2 "choose a quantization" "$ckpt" quantize "$tr" "$scratch/x9" --int4 --fp8
expect_error 1 "not a multiple of the group size 256" "$ckpt" quantize "$tr" "$scratch/x10" --int4 --group-size 256
[ ! -e "$scratch/x10" ] && pass "a refused int4 run leaves nothing behind" || fail "x10 left behind"
# validate checks every INT4 format's structure and runs each Linear (exit 3: no GPU here).
for d in gptq awq ct4 gptq-asym g32; do
  "$ckpt" validate "$scratch/$d" >/dev/null 2>&1; code=$?
  { [ $code = 0 ] || [ $code = 3 ]; } && pass "validate int4 $d (exit $code)" || fail "validate int4 $d -> exit $code"
done
# --pad-intermediate=4: intermediate 384 -> 512 (4 ranks of 128), recorded; the output validates.
"$ckpt" quantize "$tr" "$scratch/pad4" --int4 --pad-intermediate=4 -q && python3 - "$scratch/pad4" <<'PY' \
  && pass "int4 --pad-intermediate=4: intermediate_size 512, recorded, down_proj [512/8, 128]" || fail "int4 --pad-intermediate"
import json, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert c["intermediate_size"] == 512, c["intermediate_size"]
assert c["ckpt_intermediate_padding"]["original_intermediate_size"] == 384
raw = open(d + "/model.safetensors", "rb").read()
n = int.from_bytes(raw[:8], "little")
h = json.loads(raw[8:8 + n])
assert h["model.layers.0.mlp.down_proj.qweight"]["shape"] == [64, 128], h["model.layers.0.mlp.down_proj.qweight"]
assert h["model.layers.0.mlp.gate_proj.qweight"]["shape"] == [16, 512]
PY
"$ckpt" validate "$scratch/pad4" >/dev/null 2>&1; code=$?
{ [ $code = 0 ] || [ $code = 3 ]; } && pass "validate of the padded output (exit $code)" || fail "validate pad4 -> exit $code"
expect_error 2 "--pad-intermediate applies only to --int4" "$ckpt" quantize "$tr" "$scratch/x11" --fp8 --pad-intermediate
expect_error 2 "needs a tensor-parallel degree" "$ckpt" quantize "$tr" "$scratch/x12" --int4 --pad-intermediate=0

# Already quantized: the same scheme is a plain copy, another one is refused.
"$ckpt" quantize "$scratch/block" "$scratch/block2" --fp8 --scheme block -q || fail "same-scheme copy"
python3 "$here/st_tensors.py" equal "$scratch/block" "$scratch/block2" && pass "same scheme again: tensors copied unchanged" || fail "same-scheme copy differs"
expect_error 1 "already quantized (fp8 native block 128x128)" "$ckpt" quantize "$scratch/block" "$scratch/x1" --fp8
[ ! -e "$scratch/x1" ] || fail "refused run left an output"

# Usage errors.
expect_error 2 "choose a quantization: --fp8" "$ckpt" quantize "$src" "$scratch/x2"
expect_error 2 "--scheme must be tensor, block or channel" "$ckpt" quantize "$src" "$scratch/x3" --fp8 --scheme row
expect_error 2 "only in --format compressed-tensors" "$ckpt" quantize "$src" "$scratch/x4" --fp8 --scheme channel --format native
expect_error 2 "is not ROWSxCOLS" "$ckpt" quantize "$src" "$scratch/x5" --fp8 --scheme block --block 128
if ! command -v nvidia-smi >/dev/null 2>&1; then
  expect_error 1 "cuda" "$ckpt" quantize "$src" "$scratch/x6" --fp8 --device cuda
  expect_error 1 "no usable CUDA GPU" "$ckpt" quantize "$tr" "$scratch/x13" --int4 --device cuda
fi
expect_error 2 "--device must be auto, cpu or cuda" "$ckpt" quantize "$tr" "$scratch/x14" --int4 --device gpu
expect_error 1 "calibrated quantization (--method gptq) runs on the CPU" \
  "$ckpt" quantize "$tr" "$scratch/x15" --int4 --method gptq --calib "$td/calib/llama-trained-docstrings.txt" --device cuda
# --device auto (the default): -v says which device and why, and the bytes are --device cpu's;
# without -v nothing is said (here, without a GPU, the CPU path runs silently).
for q in "--int4" "--fp8"; do
  n=${q#--}
  "$ckpt" quantize "$tr" "$scratch/auto-$n" $q -v 2>"$scratch/auto-$n.err" >/dev/null || fail "auto $n run"
  "$ckpt" quantize "$tr" "$scratch/cpu-$n" $q --device cpu -q || fail "cpu $n run"
  grep -Eq "^ckpt quantize: --device auto chose (cpu|cuda): " "$scratch/auto-$n.err" \
    && pass "auto $n: -v names the device and the reason ($(grep -o 'chose [a-z]*: .*' "$scratch/auto-$n.err" | head -1))" \
    || fail "auto $n: no choice line in -v"
  cmp -s "$scratch/auto-$n/model.safetensors" "$scratch/cpu-$n/model.safetensors" && cmp -s "$scratch/auto-$n/config.json" "$scratch/cpu-$n/config.json" \
    && pass "auto $n: the bytes of --device cpu" || fail "auto $n: bytes differ from --device cpu"
  out=$("$ckpt" quantize "$tr" "$scratch/quiet-$n" $q 2>&1 >/dev/null)
  ! grep -q "device auto" <<<"$out" && pass "auto $n: nothing said without -v" || fail "auto $n: spoke without -v"
done
finish
