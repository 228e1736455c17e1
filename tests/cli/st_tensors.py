#!/usr/bin/env python3
"""Compares the tensors of safetensors checkpoints with only the standard library (no torch or
safetensors package needed): `st_tensors.py equal A B` exits 0 when both hold the same names with
the same dtype, shape and bytes (A and B: a .safetensors file or a directory of them);
`st_tensors.py metadata FILE` prints the __metadata__ object as JSON."""
import json
import os
import struct
import sys


def read_file(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        meta = header.pop("__metadata__", None)
        out = {}
        for name, info in header.items():
            b, e = info["data_offsets"]
            f.seek(base + b)
            out[name] = (info["dtype"], tuple(info["shape"]), f.read(e - b))
        return out, meta


def read_any(path):
    if os.path.isdir(path):
        tensors = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".safetensors"):
                t, _ = read_file(os.path.join(path, name))
                dup = set(t) & set(tensors)
                if dup:
                    sys.exit(f"{path}: tensor {sorted(dup)[0]} appears in two files")
                tensors.update(t)
        return tensors
    return read_file(path)[0]


def main():
    if sys.argv[1] == "metadata":
        print(json.dumps(read_file(sys.argv[2])[1], sort_keys=True))
        return 0
    a, b = read_any(sys.argv[2]), read_any(sys.argv[3])
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {'the first' if name in a else 'the second'}")
            bad += 1
        elif a[name] != b[name]:
            print(f"{name}: differs ({a[name][0]} {a[name][1]} vs {b[name][0]} {b[name][1]})")
            bad += 1
    print(f"{len(a)} vs {len(b)} tensors, {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
