#!/usr/bin/env bash
# GPU machine (has torch + safetensors): ckpt cast, on the CPU and with --device cuda, gives the
# bytes of torch's own `tensor.to(dtype)` on this machine's torch, NaNs included, for every 16-bit
# pattern, special and random f32/f64 patterns and the testdata models.
set -euo pipefail
ckpt=${1:?usage: check_cast.sh path/to/ckpt testdata_dir}
td=${2:?}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 - "$scratch/src.safetensors" <<'PY'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(4)
all16 = torch.arange(65536, dtype=torch.int32).to(torch.int16)
specials = torch.tensor([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7F808000,
                         0x7FBFFFFF, 0x7F7FFFFF, 0x7F7F8000, 0x00000001, 0x00800000, 0x477FF000, 0x477FE000,
                         0x33000000, 0x33800001, 0x3F808000, 0x3F818000], dtype=torch.int64).to(torch.int32)
f32 = torch.cat([specials, torch.randint(-2**31, 2**31 - 1, (2_000_000,), generator=g, dtype=torch.int32)])
f64 = torch.randint(-2**63, 2**63 - 1, (200_000,), generator=g, dtype=torch.int64)
f64_in_range = (torch.randn(200_000, generator=g, dtype=torch.float64) * 1e3)
save_file({"bf16_all": all16.view(torch.bfloat16).clone(), "f16_all": all16.view(torch.float16).clone(),
           "f32_bits": f32.view(torch.float32), "f64_bits": f64.view(torch.float64), "f64_vals": f64_in_range,
           "i32": torch.arange(7, dtype=torch.int32)}, sys.argv[1], metadata={"format": "pt"})
PY
for d in bf16 f16 f32; do
  for dev in cpu cuda; do
    "$ckpt" cast "$scratch/src.safetensors" "$scratch/$d-$dev" --dtype "$d" --device "$dev" -q
  done
done
for model in llama llama-f32 qwen3-moe; do
  "$ckpt" cast "$td/$model" "$scratch/m-$model" --dtype f16 --device cuda -q
done
python3 - "$scratch" "$td" <<'PY'
import sys, torch
from safetensors.torch import load_file
scratch, td = sys.argv[1], sys.argv[2]
src = load_file(f"{scratch}/src.safetensors")
names = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
ints = {2: torch.int16, 4: torch.int32}
bad = 0
for d, dt in names.items():
    for dev in ("cpu", "cuda"):
        out = load_file(f"{scratch}/{d}-{dev}/model.safetensors")
        for k, t in src.items():
            want = t.to(dt) if t.is_floating_point() else t
            got = out[k]
            same = got.dtype == want.dtype and torch.equal(got.view(ints[got.element_size()]) if got.is_floating_point() else got,
                                                          want.view(ints[want.element_size()]) if want.is_floating_point() else want)
            if not same:
                bad += 1
                diff = (got.view(ints[got.element_size()]) != want.view(ints[want.element_size()]))
                nan_only = bool(torch.isnan(want.float())[diff].all())
                print(f"MISMATCH {k} -> {d} on {dev}: {int(diff.sum())} elements differ (NaN only: {nan_only})")
    print(f"{d}: cpu and cuda outputs compared with torch {torch.__version__} .to() bit for bit")
for model in ("llama", "llama-f32", "qwen3-moe"):
    a = load_file(f"{td}/{model}/model.safetensors")
    b = load_file(f"{scratch}/m-{model}/model.safetensors")
    for k, t in a.items():
        if not torch.equal(t.to(torch.float16).view(torch.int16), b[k].view(torch.int16)):
            bad += 1
            print(f"MISMATCH {model} {k}")
print("check_cast:", "FAILED" if bad else "ok", f"({bad} mismatches)")
sys.exit(1 if bad else 0)
PY
