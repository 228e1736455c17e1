#!/usr/bin/env bash
# GPU machine: (1) the CUDA cast kernel's throughput as a fraction of a device-to-device copy of
# the same traffic (target >= 70%, tests/gpu/test_cast_gpu ThroughputVsDeviceCopy); (2) ckpt cast
# bf16 -> f16 of a >= 2 GB synthetic checkpoint (CPU and --device cuda) side by side with the
# torch path (safetensors load_file, .to(float16), save_file) and cp, medians of alternating runs;
# the outputs must hold the same tensors as torch's.
# Usage: gpu_cast.sh path/to/ckpt [runs]
set -euo pipefail
ckpt=$1
runs=${2:-3}
build=$(dirname "$ckpt")
export CKPT_SYNTHETIC=${CKPT_SYNTHETIC:-$build/tests/ckpt_make_synthetic}
source "$(dirname "$0")/lib.sh"
if [ ! -x /usr/bin/time ]; then  # no GNU time on the machine: wall time only, RSS unknown
  timed() { local t0; t0=$(date +%s.%N); "$@" >/dev/null; secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'); rss_mb=n/a; }
fi

"$build/tests/test_cast_gpu" --gtest_filter='CastGpu.ThroughputVsDeviceCopy' | grep -E 'CAST_GPU_THROUGHPUT|OK|FAILED'

src=$(synthetic "llama-22" --layers 22)
bytes=$(stat -c %s "$src/model.safetensors")
cat >"$bench_dir/torch_cast.py" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in t.items()}, sys.argv[2],
          metadata={"format": "pt"})
PY
cps=() cpus=() gpus=() tos=() cpu_rss=() gpu_rss=() to_rss=()
for ((i = 0; i < runs; i++)); do
  rm -rf "$bench_dir"/{cp,cpu,gpu}-out "$bench_dir/torch.safetensors"; settle
  timed cp "$src/model.safetensors" "$bench_dir/cp-out"; cps+=("$secs")
  timed "$ckpt" cast "$src" "$bench_dir/cpu-out" --dtype f16 -q; cpus+=("$secs"); cpu_rss+=("$rss_mb")
  timed "$ckpt" cast "$src" "$bench_dir/gpu-out" --dtype f16 --device cuda -q; gpus+=("$secs"); gpu_rss+=("$rss_mb")
  timed python3 "$bench_dir/torch_cast.py" "$src/model.safetensors" "$bench_dir/torch.safetensors"; tos+=("$secs"); to_rss+=("$rss_mb")
done
printf '%-10s %12s %8s %10s %10s %10s %10s %10s %10s\n' case bytes cp_s ckpt_cpu_s ckpt_cuda_s torch_s cpu_rssMB cuda_rssMB torch_rssMB
printf '%-10s %12s %8s %10s %10s %10s %10s %10s %10s\n' "bf16->f16" "$bytes" "$(median "${cps[@]}")" "$(median "${cpus[@]}")" \
  "$(median "${gpus[@]}")" "$(median "${tos[@]}")" "$(max_of "${cpu_rss[@]}")" "$(max_of "${gpu_rss[@]}")" "$(max_of "${to_rss[@]}")"
echo "runs: cp ${cps[*]} | cpu ${cpus[*]} | cuda ${gpus[*]} | torch ${tos[*]}"
for out in cpu-out gpu-out; do
  cmp -s "$bench_dir/$out/model.safetensors" "$bench_dir/torch.safetensors" && echo "$out: byte-identical to torch's file" \
    || python3 "$(dirname "$0")/../cli/st_tensors.py" equal "$bench_dir/$out" "$bench_dir/torch.safetensors"
done
rm -rf "$bench_dir"/{cp,cpu,gpu}-out "$bench_dir/torch.safetensors"
