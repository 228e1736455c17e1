#!/usr/bin/env bash
# GPU machine (torch, transformers, safetensors there):
#  (a) ckpt convert of testdata/llama-bin (and -sharded) loads with transformers from_pretrained
#      and gives exactly the logits of the original .bin checkpoint, on the GPU;
#  (b) ckpt convert vs the usual Python path (torch.load + safetensors.torch.save_file) on a
#      ~2.2 GB Llama-shaped .bin: wall time and peak RSS side by side, and identical tensors;
#  (c) Python safetensors opens every output and every tensor equals torch.load's .contiguous().
set -euo pipefail
ckpt=$(realpath "${1:?usage: check_convert.sh path/to/ckpt testdata_dir}")
td=$(realpath "${2:?}")
root=$(cd "$(dirname "$0")/../.." && pwd)
scratch=$(mktemp -d "${BENCH_DIR:-/tmp}/ckpt-check-convert.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

for m in llama-bin llama-bin-sharded llama-tied; do "$ckpt" convert -q "$td/$m" "$scratch/$m"; done
"$ckpt" convert -q --keep-aliases "$td/edge/edge.bin" "$scratch/edge"
"$ckpt" convert -q --keep-aliases "$td/edge/edge_legacy.bin" "$scratch/edge_legacy"
"$ckpt" convert -q "$td/edge/edge.bin" "$scratch/edge_dropped"

# (b) the timing comparison on a large file written without torch, then loaded by torch.
python3 "$root/tests/bench/torch_zip_writer.py" llama "$scratch/big.bin" --layers 22
cat "$scratch/big.bin" >/dev/null
python3 - "$ckpt" "$scratch" <<'PY'
import os, subprocess, sys, time
ckpt, s = sys.argv[1], sys.argv[2]
big = os.path.join(s, "big.bin")
def run(label, cmd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    assert status == 0, (label, status)
    return dt, ru.ru_maxrss / 1024
py = ("import sys, torch; from safetensors.torch import save_file; "
      "sd = torch.load(sys.argv[1], map_location='cpu'); "
      "save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2], metadata={'format': 'pt'})")
rows = {"ckpt convert": [], "torch.load + save_file": []}
for i in range(3):
    for label, cmd in [("ckpt convert", [ckpt, "convert", "-q", "--force", big, os.path.join(s, "out")]),
                       ("torch.load + save_file", [sys.executable, "-c", py, big, os.path.join(s, "py.safetensors")])]:
        rows[label].append(run(label, cmd))
size = os.path.getsize(big)
print(f"(b) {size/1e9:.2f} GB Llama-shaped bf16 .bin, 3 alternating runs, median (page-cached source):")
print(f"    {'':26}{'seconds':>9}{'GB/s':>8}{'peak RSS MB':>13}")
for label, r in rows.items():
    t = sorted(x[0] for x in r)[1]
    m = max(x[1] for x in r)
    print(f"    {label:26}{t:9.2f}{size/t/1e9:8.2f}{m:13.0f}   runs {[round(x[0], 2) for x in r]}")
PY
python3 "$root/tests/cli/st_tensors.py" equal "$scratch/out/model.safetensors" "$scratch/py.safetensors"

python3 - "$td" "$scratch" <<'PY'
import glob, os, sys
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM
td, scratch = sys.argv[1], sys.argv[2]
dev = "cuda" if torch.cuda.is_available() else "cpu"
ids = torch.tensor([[1, 5, 9, 17, 33, 2, 40, 41, 7, 3, 11, 13]], device=dev)

def logits(path):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to(dev).eval()
    with torch.no_grad():
        return m(ids).logits.float()

# (a) from_pretrained on the converted directory vs the original .bin checkpoint.
for m in ["llama-bin", "llama-bin-sharded", "llama-tied"]:
    a, b = logits(os.path.join(td, m)), logits(os.path.join(scratch, m))
    diff = (a - b).abs().max().item()
    print(f"(a) {m}: logits {tuple(a.shape)} on {dev}, max |diff| = {diff}, "
          f"top-1 agree {(a.argmax(-1) == b.argmax(-1)).float().mean().item():.3f}")
    assert torch.equal(a, b), m

# (c) every output file opens with safetensors; tensors equal torch.load's contiguous() values.
files = tensors = 0
def load_dir(d):
    global files
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        files += 1
        with safe_open(f, framework="pt") as h:
            assert h.metadata().get("format") == "pt", f
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out
# torch 2.11 cannot load its own legacy file holding uint16/fp8 tensors (its legacy loader asks
# UntypedStorage for a dtype), so edge_legacy is compared with torch's contiguous() bytes as
# safetensors holds them (edge_ref.safetensors, written by torch from the same dict).
def torch_ref(src):
    if src.endswith(".safetensors"):
        with safe_open(os.path.join(td, src), framework="pt") as h:
            return {k: h.get_tensor(k) for k in h.keys()}
    return torch.load(os.path.join(td, src), map_location="cpu")
for name, src in [("edge", "edge/edge.bin"), ("edge_legacy", "edge/edge_ref.safetensors"), ("llama-bin", "llama-bin/pytorch_model.bin"),
                  ("llama-tied", "llama-tied/pytorch_model.bin")]:
    ref = torch_ref(src)
    got = load_dir(os.path.join(scratch, name))
    with safe_open(glob.glob(os.path.join(scratch, name, "*.safetensors"))[0], framework="pt") as h:
        dropped = {k: v for k, v in h.metadata().items() if k != "format"}  # {dropped: kept} tied names
    assert set(ref) == set(got) | set(dropped), (name, set(ref) ^ set(got))
    for k, v in ref.items():
        v = v.detach().contiguous()
        if k in dropped:
            assert v.data_ptr() == ref[dropped[k]].data_ptr(), (name, k, "dropped but not an alias")
            k = dropped[k]
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, (name, k)
        assert torch.equal(got[k].reshape(-1).view(torch.uint8), v.reshape(-1).view(torch.uint8)), (name, k)
        tensors += 1
got = load_dir(os.path.join(scratch, "edge_dropped"))
assert "tied_b" not in got and "tied_a" in got
with safe_open(os.path.join(scratch, "edge_dropped", "model.safetensors"), framework="pt") as h:
    assert h.metadata()["tied_b"] == "tied_a", h.metadata()
print(f"(c) safetensors opened {files} files, {tensors} tensors equal to torch's .contiguous() bytes")
PY
echo "check_convert: ok"
