#!/usr/bin/env bash
# The torch-zip writer the convert benchmark uses (tests/bench/torch_zip_writer.py, no torch) is
# checked against a real torch file: given llama/model.safetensors' weights in state_dict order
# and the real file's serialization_id, it must write testdata/llama-bin/pytorch_model.bin byte
# for byte (pickle memo and batching, _metadata BUILD, padding, descriptors, ZIP64 end records).
set -euo pipefail
ckpt=$1 data=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$root/tests/bench" "$data" "$tmp/pytorch_model.bin" <<'PY'
import json, struct, sys, zipfile
sys.path.insert(0, sys.argv[1])
import torch_zip_writer as w
data, out = sys.argv[2], sys.argv[3]
with open(f"{data}/llama/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    blob = f.read()
real = zipfile.ZipFile(f"{data}/llama-bin/pytorch_model.bin")
sid = real.read("pytorch_model/.data/serialization_id").decode()
names, modules = w.llama_state(layers=2, hidden=64, intermediate=128, vocab=256, kv_heads=2, heads=8)
tensors, storages = [], []
for i, (name, shape) in enumerate(names):
    assert header[name]["dtype"] == "BF16" and tuple(header[name]["shape"]) == shape, name
    b, e = header[name]["data_offsets"]
    numel = (e - b) // 2
    tensors.append((name, "BFloat16Storage", str(i), numel, 0, list(shape), w.contiguous_strides(shape)))
    storages.append((str(i), e - b, lambda b=b, e=e: iter([blob[b:e]])))
w.write_torch_zip(out, "pytorch_model", w.state_dict_pickle(tensors, modules), storages, sid)
PY
cmp "$tmp/pytorch_model.bin" "$data/llama-bin/pytorch_model.bin"
"$ckpt" convert -q "$tmp/pytorch_model.bin" "$tmp/out"
python3 "$root/tests/cli/st_tensors.py" equal "$tmp/out/model.safetensors" "$data/llama/model.safetensors" >/dev/null
echo "test_convert_writer: ok"
