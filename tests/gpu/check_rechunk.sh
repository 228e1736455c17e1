#!/usr/bin/env bash
# GPU machine (has torch + safetensors): Python's safetensors opens every file ckpt rechunk
# writes, and every tensor equals the source's, for every testdata model, sharded and single.
set -euo pipefail
ckpt=${1:?usage: check_rechunk.sh path/to/ckpt testdata_dir}
td=${2:?}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for model in llama llama-sharded llama-tied qwen2 mistral qwen3 mixtral phi3 qwen3-moe deepseek-v3 llama-f32; do
  "$ckpt" rechunk "$td/$model" "$scratch/$model-one" -q
  "$ckpt" rechunk "$td/$model" "$scratch/$model-shards" --max-shard-size 60KB -q
done
python3 - "$td" "$scratch" <<'PY'
import glob, json, os, sys
import torch
from safetensors import safe_open
td, scratch = sys.argv[1], sys.argv[2]

def load_dir(d):
    # The checkpoint's files only: testdata's reference_logits.safetensors (transformers' logits
    # for the forward tests) sits beside the weights and is not part of the model.
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        if os.path.basename(f) == "reference_logits.safetensors":
            continue
        with safe_open(f, framework="pt") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out

checked = files = 0
for out_dir in sorted(glob.glob(os.path.join(scratch, "*"))):
    model = os.path.basename(out_dir).rsplit("-", 1)[0]
    src = load_dir(os.path.join(td, model))
    got = load_dir(out_dir)
    files += len(glob.glob(os.path.join(out_dir, "*.safetensors")))
    assert src.keys() == got.keys(), (out_dir, src.keys() ^ got.keys())
    for k, v in src.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and torch.equal(got[k], v), (out_dir, k)
        checked += 1
    idx = os.path.join(out_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
        assert set(wm) == set(got), out_dir
print(f"python safetensors opened {files} files written by ckpt rechunk; {checked} tensors equal to the source")
PY
