#!/usr/bin/env bash
# GPU machine (torch, transformers, safetensors there):
#  (a) transformers loads the block-format output of testdata/llama through its FineGrainedFP8
#      path (FP8Linear, float8_e4m3fn weights) and its logits stay close to the bf16 model's:
#      top-1 agreement and relative error printed and bounded;
#  (b) --device cuda writes the same bytes as the CPU for every scheme and format (FP8 and INT4);
#  (c) Python safetensors opens every output; dequantized weights (code x scale, with each
#      format's scale layout) are close to the source, and torch's own quantization (float32,
#      amax/448, clamp, .to(float8_e4m3fn)) gives exactly our codes for the per-tensor and
#      per-channel schemes.
set -euo pipefail
ckpt=$(realpath "${1:?usage: check_quantize.sh path/to/ckpt testdata_dir}")
td=$(realpath "${2:?}")
scratch=$(mktemp -d "${BENCH_DIR:-/tmp}/ckpt-check-quantize.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

variants="tensor:native block:native channel:compressed-tensors tensor:compressed-tensors block:compressed-tensors"
for v in $variants; do
  s=${v%%:*} f=${v##*:}
  for dev in cpu cuda; do "$ckpt" quantize -q "$td/llama" "$scratch/$s-$f-$dev" --fp8 --scheme "$s" --format "$f" --device "$dev"; done
  cmp "$scratch/$s-$f-cpu/model.safetensors" "$scratch/$s-$f-cuda/model.safetensors"
  echo "(b) $s/$f: --device cuda output identical to --device cpu"
done
"$ckpt" quantize -q "$td/qwen3-moe" "$scratch/moe-block" --fp8 --scheme block --device cuda
# (b) for --int4 too (RTN; kernels/int4_quant_engine.cpp), every format, symmetry, group size,
# --layout marlin and --pad-intermediate, on the trained Llama (its shapes take g128 and Marlin).
i4=0
for v in "gptq" "gptq --asym" "gptq --group-size 32" "gptq --group-size -1" "awq --asym" "awq --asym --group-size 64" \
         "compressed-tensors" "compressed-tensors --asym --group-size 32" "compressed-tensors --group-size -1" \
         "gptq --layout marlin" "awq --asym --layout marlin" "compressed-tensors --layout marlin" "gptq --pad-intermediate=4"; do
  i4=$((i4 + 1))
  for dev in cpu cuda; do "$ckpt" quantize -q "$td/llama-trained" "$scratch/i4-$i4-$dev" --int4 --format $v --device "$dev"; done
  for f in "$scratch/i4-$i4-cpu"/*; do
    n=$(basename "$f")
    [ "$n" = ckpt-manifest.json ] || cmp "$f" "$scratch/i4-$i4-cuda/$n"
  done
  rm -rf "$scratch/i4-$i4-cpu" "$scratch/i4-$i4-cuda"
  echo "(b) int4 $v: --device cuda output identical to --device cpu"
done

python3 - "$td" "$scratch" <<'PY'
import glob, json, os, sys
import torch
from safetensors import safe_open
td, scratch = sys.argv[1], sys.argv[2]

# (c) every output opens; dequantization is close to the source; torch's own quantizer agrees.
src = {}
with safe_open(os.path.join(td, "llama/model.safetensors"), "pt") as f:
    for k in f.keys():
        src[k] = f.get_tensor(k)
for path in sorted(glob.glob(os.path.join(scratch, "*", "*.safetensors"))):
    d = os.path.dirname(path)
    q = json.load(open(os.path.join(d, "config.json")))["quantization_config"]
    with safe_open(path, "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
    if "moe" in d:
        print(f"(c) {os.path.basename(d)}: {len(t)} tensors open")
        continue
    worst, exact = 0.0, 0
    for k, w in src.items():
        if t[k].dtype != torch.float8_e4m3fn:
            assert torch.equal(t[k], w), k
            continue
        m = k[: -len(".weight")]
        s = t.get(m + ".weight_scale_inv", t.get(m + ".weight_scale")).float()
        n, kk = w.shape
        strategy = q.get("config_groups", {}).get("group_0", {}).get("weights", {}).get("strategy")
        block = q.get("weight_block_size") or (strategy == "block" and q["config_groups"]["group_0"]["weights"]["block_structure"])
        if block:  # expand the [ceil(N/bn), ceil(K/bk)] grid over the (partial) blocks
            assert list(s.shape) == [-(-n // block[0]), -(-kk // block[1])], (k, s.shape)
            s = s.repeat_interleave(block[0], 0)[:n].repeat_interleave(block[1], 1)[:, :kk]
        deq = t[k].float() * s
        err = ((deq - w.float()).norm() / w.float().norm()).item()
        worst = max(worst, err)
        assert err < 0.06, (path, k, err)
        if "weight_block_size" not in q and strategy in (None, "tensor", "channel"):
            wf = w.float()
            amax = wf.abs().amax() if strategy in (None, "tensor") else wf.abs().amax(dim=1, keepdim=True)
            scale = torch.where(amax == 0, torch.ones_like(amax), amax / 448.0)
            if q["quant_method"] == "compressed-tensors":  # stored (rounded) in the weight's dtype
                scale = scale.to(w.dtype)
            ref = (wf / scale.float()).clamp(-448, 448).to(torch.float8_e4m3fn)
            assert torch.equal(ref.view(torch.uint8), t[k].view(torch.uint8)), (path, k)
            exact += 1
    print(f"(c) {os.path.basename(d)}: {len(t)} tensors open, worst relative error {worst:.4f}, "
          f"{exact} weights bit-identical to torch's own quantization")

# (a) transformers FineGrainedFP8 on the block output vs the bf16 model. Its FP8 GEMM kernel is
# fetched from the Hugging Face Hub at run time (the `kernels` package), which an offline machine
# cannot do, so the forward runs two ways that need no download: (a1) FineGrainedFP8Config(
# dequantize=True), transformers' own conversion of our codes and weight_scale_inv to bf16;
# (a2) the FP8Linear modules exactly as transformers loaded them (float8_e4m3fn weight and
# weight_scale_inv parameters), their forward replaced by dequantize-then-matmul.
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, FineGrainedFP8Config
from transformers.integrations import finegrained_fp8 as tf8
ids = torch.tensor([[1, 5, 9, 17, 33, 2, 40, 41, 7, 3, 11, 13, 21, 8, 30, 44]], device="cuda")
def run(path, **kw):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="cuda", **kw).eval()
    with torch.no_grad():
        return m, m(ids).logits.float()
def compare(name, out, ref):
    top1 = (ref.argmax(-1) == out.argmax(-1)).float().mean().item()
    rel = ((out - ref).norm() / ref.norm()).item()
    print(f"(a) {name}: top-1 agreement {top1:.3f} over {ids.shape[1]} positions, relative logit error "
          f"{rel:.4f}, max |dlogit| {(out - ref).abs().max().item():.4f}")
    return top1, rel
block = os.path.join(scratch, "block-native-cpu")
_, ref = run(os.path.join(td, "llama"))
results, failures = [], []
try:
    _, out = run(block, quantization_config=FineGrainedFP8Config(dequantize=True))
    results.append(compare("transformers FineGrainedFP8 dequantize=True", out, ref))
except Exception as e:  # reported, and fails the check at the end
    failures.append(f"(a1) dequantize=True: {type(e).__name__}: {e}")
    print(failures[-1])

def dequant_forward(self, x):
    w = self.weight.float()
    s = self.weight_scale_inv.float()
    bn, bk = getattr(self, "block_size", None) or (128, 128)
    s = s.repeat_interleave(bn, 0)[: w.shape[0]].repeat_interleave(bk, 1)[:, : w.shape[1]]
    return F.linear(x, (w * s).to(x.dtype), self.bias)
tf8.FP8Linear.forward = dequant_forward
fp8, out = run(block)
layers = [mod for mod in fp8.modules() if isinstance(mod, tf8.FP8Linear)]
wdt = layers[0].weight.dtype
assert len(layers) == 14 and wdt == torch.float8_e4m3fn, (len(layers), wdt)
results.append(compare(f"transformers FP8Linear x{len(layers)} as loaded ({wdt})", out, ref))
assert not failures, failures
for top1, rel in results:
    assert rel < 0.1 and top1 >= 0.75, (rel, top1)
PY
echo "check_quantize: all passed"
