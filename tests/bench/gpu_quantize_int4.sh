#!/usr/bin/env bash
# GPU machine: the whole `ckpt quantize --int4` (GPTQ g128, RTN) on the ~2.2 GB bf16 Llama-shaped
# synthetic checkpoint (gpu_quantize.sh's), --device cuda (the staging pipeline of
# kernels/staging_pipeline.h) against --device cpu and cp of the source: medians of 3 alternating
# runs, peak RSS; both devices' outputs must be identical. Then --device auto -v: the device it
# picks and why; it fails when auto picked cuda and cuda was the slower (issue 13: the GPU path
# must beat the CPU or not be chosen), and says so when it kept the CPU although cuda was faster
# (lib/quant/device_choice.cpp's rates are then worth re-measuring). Beside them, the plain torch
# RTN path a user would write (load_file to the GPU, per-group absmax / 7.5 scales rounded to f16,
# round-half-even codes + 8, GPTQ v1 packing, save_file), whose tensors must equal ckpt's.
# Usage: gpu_quantize_int4.sh path/to/ckpt   (RUNS=3 by default)
set -euo pipefail
ckpt=$(realpath "${1:?usage: gpu_quantize_int4.sh path/to/ckpt}")
build=$(dirname "$ckpt")
export CKPT_SYNTHETIC=${CKPT_SYNTHETIC:-$build/tests/ckpt_make_synthetic}
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-3}

src=$(synthetic "llama-22" --layers 22)
args=(--int4 --group-size 128 -q)
status=0
# GPTQ v1, symmetric, g128 (AutoGPTQ/GPTQModel's tensors; numerics of lib/ops/int4_math.h).
cat >"$bench_dir/torch_int4.py" <<'PY'
import os, sys
import torch
from safetensors.torch import load_file, save_file
src, dst, g = sys.argv[1], sys.argv[2], 128
os.makedirs(dst)
w = load_file(os.path.join(src, "model.safetensors"), device="cuda")
out = {}
shifts = (torch.arange(8, device="cuda", dtype=torch.int64) * 4).view(1, 8, 1)
for k, t in w.items():
    if t.dim() != 2 or "embed" in k or "norm" in k or k.startswith("lm_head"):
        out[k] = t
        continue
    n, kk = t.shape
    f = t.float().view(n, kk // g, g)
    amax = f.abs().amax(-1, keepdim=True)
    scale = (amax / torch.full_like(amax, 7.5)).half().float()
    scale = torch.where(scale == 0, torch.full_like(scale, 2.0**-24), scale)
    # An all-zero group: GPTQ's reference gives it the scale 2/15 (every code is the zero, 8).
    scale = torch.where(amax == 0, torch.full_like(scale, 2.0 / 15.0).half().float(), scale)
    codes = (torch.round(f / scale) + 8).clamp(0, 15).to(torch.int64).view(n, kk).t()  # [K, N]
    packed = (codes.reshape(kk // 8, 8, n) << shifts).sum(1)
    prefix = k[: -len("weight")]
    out[prefix + "qweight"] = torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32)
    out[prefix + "scales"] = scale.view(n, kk // g).t().contiguous().half()
    out[prefix + "qzeros"] = torch.full((kk // g, n // 8), 0x77777777, dtype=torch.int32, device="cuda")
    out[prefix + "g_idx"] = torch.arange(kk, dtype=torch.int32, device="cuda") // g
torch.cuda.synchronize()
save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
PY
cps=() gpus=() cpus=() torchs=() gpurss=() cpurss=() torchrss=()
for ((i = 0; i < runs; i++)); do
  rm -rf "$bench_dir"/i4-*; settle
  timed cp "$src/model.safetensors" "$bench_dir/i4-cp"; cps+=("$secs"); rm -f "$bench_dir/i4-cp"; settle
  timed "$ckpt" quantize "$src" "$bench_dir/i4-gpu" "${args[@]}" --device cuda; gpus+=("$secs"); gpurss+=("$rss_mb"); settle
  timed "$ckpt" quantize "$src" "$bench_dir/i4-cpu" "${args[@]}" --device cpu; cpus+=("$secs"); cpurss+=("$rss_mb"); settle
  timed python3 "$bench_dir/torch_int4.py" "$src" "$bench_dir/i4-torch"; torchs+=("$secs"); torchrss+=("$rss_mb")
done
python3 "$(dirname "$0")/tensors_equal.py" "$bench_dir/i4-torch/model.safetensors" "$bench_dir/i4-cpu/model.safetensors" \
  "torch RTN path and ckpt" || status=1
for f in model.safetensors config.json quantize_config.json; do
  cmp "$bench_dir/i4-gpu/$f" "$bench_dir/i4-cpu/$f" || { echo "$f: --device cuda differs from --device cpu"; status=1; }
done
rm -rf "$bench_dir"/i4-auto
"$ckpt" quantize "$src" "$bench_dir/i4-auto" --int4 --group-size 128 -v 2>&1 >/dev/null | grep "device auto" | tee "$bench_dir/i4-auto.txt" || true
cmp "$bench_dir/i4-auto/model.safetensors" "$bench_dir/i4-cpu/model.safetensors" || { echo "--device auto output differs"; status=1; }

bytes=$(stat -c %s "$src/model.safetensors")
cp_med=$(median "${cps[@]}") gpu_med=$(median "${gpus[@]}") cpu_med=$(median "${cpus[@]}")
printf '%-26s %10s %10s %12s\n' path seconds vs_cp peak_rss_MB
printf '%-26s %10s %10s %12s\n' "cp (source)" "$cp_med" 1.000 -
printf '%-26s %10s %10.3f %12s\n' "ckpt --int4 --device cuda" "$gpu_med" "$(awk -v a="$gpu_med" -v b="$cp_med" 'BEGIN{print a/b}')" "$(max_of "${gpurss[@]}")"
printf '%-26s %10s %10.3f %12s\n' "ckpt --int4 --device cpu" "$cpu_med" "$(awk -v a="$cpu_med" -v b="$cp_med" 'BEGIN{print a/b}')" "$(max_of "${cpurss[@]}")"
torch_med=$(median "${torchs[@]}")
printf '%-26s %10s %10.3f %12s\n' "torch load/RTN/save" "$torch_med" "$(awk -v a="$torch_med" -v b="$cp_med" 'BEGIN{print a/b}')" "$(max_of "${torchrss[@]}")"
echo "runs: cp ${cps[*]}; cuda ${gpus[*]}; cpu ${cpus[*]}; torch ${torchs[*]}"
echo "source: $bytes bytes bf16; device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); $(nproc) CPUs"
faster=$(awk -v g="$gpu_med" -v c="$cpu_med" 'BEGIN{print (g < c) ? "cuda" : "cpu"}')
if grep -q "chose cuda" "$bench_dir/i4-auto.txt"; then
  [ "$faster" = cuda ] || { echo "auto chose cuda, but --device cuda ($gpu_med s) is slower than --device cpu ($cpu_med s)"; status=1; }
elif [ "$faster" = cuda ]; then
  echo "note: auto kept the CPU although --device cuda was faster here ($gpu_med s vs $cpu_med s)"
fi
rm -rf "$bench_dir"/i4-*
exit $status
