#!/usr/bin/env python3
"""Breaks a safetensors file on purpose, for the validate tests (no torch needed):
  st_edit.py flip FILE TENSOR OFFSET   flip bit 0 of byte OFFSET of TENSOR's data
  st_edit.py drop FILE TENSOR          rewrite FILE without TENSOR (offsets repacked, still valid)
  st_edit.py xor FILE TENSOR OFFSET MASK   xor byte OFFSET of TENSOR's data with MASK (0x80: E8M0/f32 exponent bits...)
  st_edit.py swaprows FILE TENSOR A B  swap rows A and B of a 2-D TENSOR
  st_edit.py setf32 FILE TENSOR VALUE  set every element of an F32 TENSOR to VALUE"""
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


def xor(path, tensor, offset, mask):
    b, n, h = read(path)
    b = bytearray(b)
    b[8 + n + h[tensor]["data_offsets"][0] + int(offset)] ^= int(mask, 0)
    open(path, "wb").write(b)


def swaprows(path, tensor, a, c):
    b, n, h = read(path)
    b = bytearray(b)
    s, e = h[tensor]["data_offsets"]
    row = (e - s) // h[tensor]["shape"][0]
    pa, pc = 8 + n + s + int(a) * row, 8 + n + s + int(c) * row
    b[pa:pa + row], b[pc:pc + row] = b[pc:pc + row], b[pa:pa + row]
    open(path, "wb").write(b)


def setf32(path, tensor, value):
    b, n, h = read(path)
    b = bytearray(b)
    assert h[tensor]["dtype"] == "F32"
    s, e = h[tensor]["data_offsets"]
    b[8 + n + s:8 + n + e] = struct.pack("<f", float(value)) * ((e - s) // 4)
    open(path, "wb").write(b)


if __name__ == "__main__":
    {"flip": flip, "drop": drop, "xor": xor, "swaprows": swaprows, "setf32": setf32}[sys.argv[1]](*sys.argv[2:])
