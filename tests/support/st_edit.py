#!/usr/bin/env python3
"""Breaks a safetensors file on purpose, for the validate tests (no torch needed):
  st_edit.py flip FILE TENSOR OFFSET   flip bit 0 of byte OFFSET of TENSOR's data
  st_edit.py drop FILE TENSOR          rewrite FILE without TENSOR (offsets repacked, still valid)"""
import json
import struct
import sys


def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return b, n, json.loads(b[8:8 + n])


def flip(path, tensor, offset):
    b, n, h = read(path)
    b = bytearray(b)
    b[8 + n + h[tensor]["data_offsets"][0] + int(offset)] ^= 0x01
    open(path, "wb").write(b)


def drop(path, tensor):
    b, n, h = read(path)
    data = b[8 + n:]
    out, blobs, off = {}, [], 0
    for k, v in h.items():
        if k == "__metadata__":
            out[k] = v
            continue
        if k == tensor:
            continue
        s, e = v["data_offsets"]
        blobs.append(data[s:e])
        out[k] = dict(v, data_offsets=[off, off + e - s])
        off += e - s
    hb = json.dumps(out, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


if __name__ == "__main__":
    {"flip": flip, "drop": drop}[sys.argv[1]](*sys.argv[2:])
