"""Every tensor of two safetensors files equal, bit for bit (FP8 compared as bytes): the check
that a torch path of the GPU benchmarks wrote what ckpt writes.
Usage: tensors_equal.py A/model.safetensors B/model.safetensors LABEL"""
import sys

import torch
from safetensors import safe_open

a, b = (safe_open(p, "pt") for p in sys.argv[1:3])
names = set(a.keys())
assert names == set(b.keys()), sorted(names ^ set(b.keys()))[:8]
for k in sorted(names):
    x, y = a.get_tensor(k), b.get_tensor(k)
    assert x.dtype == y.dtype and x.shape == y.shape, (k, x.dtype, y.dtype, x.shape, y.shape)
    bits = lambda t: t.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else t
    assert torch.equal(bits(x), bits(y)), k
print(f"{sys.argv[3]}: {len(names)} tensors, all identical")
