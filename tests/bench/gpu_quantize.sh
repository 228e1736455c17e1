#!/usr/bin/env bash
# GPU machine: (1) the FP8 kernels against a device-to-device copy of the same bytes (issue 6:
# quantize >= 70% of the copy's bandwidth); (2) the whole `ckpt quantize --fp8` (per-tensor) on a
# ~2.2 GB bf16 Llama-shaped checkpoint, --device cuda and --device cpu, next to cp of the source
# and to the simple torch path (load_file to the GPU, amax/448, clamp, .to(float8_e4m3fn),
# save_file): medians of 3 alternating runs, peak RSS; the torch path's tensors must equal ours.
# Usage: gpu_quantize.sh path/to/ckpt
set -euo pipefail
ckpt=$(realpath "${1:?usage: gpu_quantize.sh path/to/ckpt}")
build=$(dirname "$ckpt")
export CKPT_SYNTHETIC=${CKPT_SYNTHETIC:-$build/tests/ckpt_make_synthetic}
source "$(dirname "$0")/lib.sh"

echo "-- kernels vs device-to-device copy (28672 x 8192 bf16)"
CKPT_BENCH=1 "$build/tests/bench_fp8_quant_gpu" --gtest_filter='Fp8QuantGpuBench.*' | tee "$bench_dir/kernels.txt" | grep BENCH
status=0
while read -r _ kernel scheme _ _ _ _ _ _ _ _ _ ratio; do
  if [ "$kernel" = fp8_quantize ] && ! awk -v r="$ratio" 'BEGIN{exit !(r >= 0.70)}'; then
    echo "fp8_quantize $scheme: $ratio of copy bandwidth (target >= 0.70)"; status=1
  fi
done < <(grep '^BENCH fp8_' "$bench_dir/kernels.txt")

echo "-- whole command vs torch path (per-tensor FP8)"
src=$(synthetic "llama-22" --layers 22)
cat >"$bench_dir/torch_fp8.py" <<'PY'
import json, os, shutil, sys
import torch
from safetensors.torch import load_file, save_file
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
w = load_file(os.path.join(src, "model.safetensors"), device="cuda")
out = {}
for k, t in w.items():
    keep = t.dim() != 2 or "embed" in k or "norm" in k or k.startswith("lm_head")
    if keep:
        out[k] = t
        continue
    f = t.float()
    amax = f.abs().amax()
    # amax / 448 as a true division (a python-float divisor makes CUDA multiply by 1/448).
    scale = torch.where(amax == 0, torch.ones_like(amax), amax / torch.full_like(amax, 448.0))
    out[k] = (f / scale).clamp(-448, 448).to(torch.float8_e4m3fn)
    out[k[: -len("weight")] + "weight_scale"] = scale
torch.cuda.synchronize()
save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
cfg = json.load(open(os.path.join(src, "config.json")))
cfg["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic", "ignored_layers": ["lm_head"]}
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
PY
cps=() gpus=() cpus=() torchs=() gpurss=() cpurss=() torchrss=()
for ((i = 0; i < 3; i++)); do
  rm -rf "$bench_dir"/q-*; settle
  timed cp "$src/model.safetensors" "$bench_dir/q-cp"; cps+=("$secs"); rm -f "$bench_dir/q-cp"; settle
  timed "$ckpt" quantize "$src" "$bench_dir/q-gpu" --fp8 --device cuda -q; gpus+=("$secs"); gpurss+=("$rss_mb"); settle
  timed "$ckpt" quantize "$src" "$bench_dir/q-cpu" --fp8 --device cpu -q; cpus+=("$secs"); cpurss+=("$rss_mb"); settle
  timed python3 "$bench_dir/torch_fp8.py" "$src" "$bench_dir/q-torch"; torchs+=("$secs"); torchrss+=("$rss_mb")
done
cmp "$bench_dir/q-gpu/model.safetensors" "$bench_dir/q-cpu/model.safetensors"
python3 "$(dirname "$0")/tensors_equal.py" "$bench_dir/q-torch/model.safetensors" "$bench_dir/q-gpu/model.safetensors" "torch path and ckpt"
bytes=$(stat -c %s "$src/model.safetensors")
cp_med=$(median "${cps[@]}")
printf '%-22s %10s %10s %12s\n' path seconds vs_cp peak_rss_MB
printf '%-22s %10s %10s %12s\n' "cp (source)" "$cp_med" 1.000 -
for row in "ckpt --device cuda:$(median "${gpus[@]}"):$(max_of "${gpurss[@]}")" \
           "ckpt --device cpu:$(median "${cpus[@]}"):$(max_of "${cpurss[@]}")" \
           "torch load/quant/save:$(median "${torchs[@]}"):$(max_of "${torchrss[@]}")"; do
  IFS=: read -r name s r <<<"$row"
  printf '%-22s %10s %10.3f %12s\n' "$name" "$s" "$(awk -v a="$s" -v b="$cp_med" 'BEGIN{print a/b}')" "$r"
done
echo "source: $bytes bytes bf16; device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); $(nproc) CPUs"
rm -rf "$bench_dir"/q-*
exit $status
