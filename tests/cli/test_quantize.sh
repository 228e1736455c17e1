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
fi
finish
