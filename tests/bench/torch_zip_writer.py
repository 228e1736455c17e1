#!/usr/bin/env python3
"""A small writer of the torch.save zip format, without torch: the same pickle bytes CPython's
protocol-2 pickler produces for `torch.save(model.state_dict())` (memo, batching, the _metadata
BUILD) and the same zip layout torch 2.11's PyTorchStreamWriter writes (64-byte aligned stored
records with 'FB' padding, zero sizes in local headers, data descriptors, ZIP64 end records).
tests/cli/test_convert_writer.sh checks it byte for byte against testdata/llama-bin, a real
torch file. Records of 4 GiB or more (ZIP64 entries) are not supported; this writes test data.

    python3 torch_zip_writer.py llama OUT.bin --layers 22 --hidden 2048 --intermediate 5632 --vocab 32000
"""
import argparse
import os
import struct
import zlib

DTYPES = {"bf16": ("BFloat16Storage", 2), "f16": ("HalfStorage", 2), "f32": ("FloatStorage", 4)}


class Pickler:
    """Just enough of CPython's protocol-2 Pickler: objects are identified by a caller-chosen key
    (CPython memoizes by id()), everything memoizable is memoized, ints use the smallest opcode."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = {}

    def put(self, key):
        i = len(self.memo)
        self.memo[key] = i
        self.out += b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)

    def get(self, key):
        if key not in self.memo:
            return False
        i = self.memo[key]
        self.out += b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)
        return True

    def glob(self, module, name):
        if not self.get(("global", module, name)):
            self.out += b"c" + f"{module}\n{name}\n".encode()
            self.put(("global", module, name))

    def string(self, s, key=None):
        if key is not None and self.get(key):
            return
        b = s.encode()
        self.out += b"X" + struct.pack("<I", len(b)) + b
        self.put(key if key is not None else ("str", id(b), len(self.memo)))

    def integer(self, v):
        if 0 <= v <= 0xFF:
            self.out += b"K" + bytes([v])
        elif 0 <= v <= 0xFFFF:
            self.out += b"M" + struct.pack("<H", v)
        elif -(2**31) <= v < 2**31:
            self.out += b"J" + struct.pack("<i", v)
        else:
            n = (v.bit_length() + 8) // 8
            self.out += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)

    def int_tuple(self, values):
        if not values:
            self.out += b")"
            return
        if len(values) > 3:
            self.out += b"("
        for v in values:
            self.integer(v)
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(values), b"t")
        self.put(("tuple", len(self.memo)))

    def ordered_dict(self):
        self.glob("collections", "OrderedDict")
        self.out += b")R"
        self.put(("od", len(self.memo)))

    def batch_setitems(self, items, save_item):
        for start in range(0, len(items), 1000):
            batch = items[start:start + 1000]
            if len(batch) > 1:
                self.out += b"("
            for item in batch:
                save_item(item)
            self.out += b"u" if len(batch) > 1 else b"s"


def state_dict_pickle(tensors, modules):
    """tensors: (name, storage_class, key, storage_numel, offset, size, stride) in dict order;
    modules: (prefix, version) for the _metadata nn.Module.state_dict() attaches."""
    p = Pickler()
    p.ordered_dict()

    def save_tensor(t):
        name, cls, key, numel, offset, size, stride = t
        p.string(name)
        p.glob("torch._utils", "_rebuild_tensor_v2")
        p.out += b"(("
        p.string("storage", key="storage")
        p.glob("torch", cls)
        p.string(key)
        p.string("cpu", key="cpu")
        p.integer(numel)
        p.out += b"t"
        p.put(("pid", key))
        p.out += b"Q"
        p.integer(offset)
        p.int_tuple(size)
        p.int_tuple(stride)
        p.out += b"\x89"  # requires_grad False
        p.ordered_dict()  # backward hooks
        p.out += b"t"
        p.put(("args", name))
        p.out += b"R"
        p.put(("tensor", name))

    p.batch_setitems(tensors, save_tensor)
    # state = {'_metadata': OrderedDict((prefix, {'version': v}), ...)}, then BUILD.
    p.out += b"}"
    p.put(("state",))
    p.string("_metadata")

    def save_module(m):
        prefix, version = m
        p.string(prefix)
        p.out += b"}"
        p.put(("meta", prefix))
        p.string("version", key="version")
        p.integer(version)
        p.out += b"s"

    p.ordered_dict()
    p.batch_setitems(modules, save_module)
    p.out += b"sb."
    return bytes(p.out)


def write_torch_zip(path, folder, pickle_bytes, storages, serialization_id):
    """storages: (key, nbytes, chunks) where chunks() yields the record's bytes."""
    records = [("data.pkl", len(pickle_bytes), lambda: iter([pickle_bytes])),
               (".format_version", 1, lambda: iter([b"1"])),
               (".storage_alignment", 2, lambda: iter([b"64"])),
               ("byteorder", 6, lambda: iter([b"little"]))]
    records += [(f"data/{k}", n, chunks) for k, n, chunks in storages]
    records += [("version", 2, lambda: iter([b"3\n"])),
                (".data/serialization_id", len(serialization_id), lambda: iter([serialization_id.encode()]))]
    central = bytearray()
    with open(path, "wb") as f:
        for name, size, chunks in records:
            full = f"{folder}/{name}".encode()
            offset = f.tell()
            if size >= 0xFFFFFFFF or offset >= 0xFFFFFFFF:
                raise ValueError("records at or beyond 4 GiB need ZIP64 entries, which this writer does not write")
            start = offset + 30 + len(full) + 4
            pad = (64 - start % 64) % 64
            flags = 0x0808 if size else 0x0800
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 0, flags, 0, 0, 0, 0, 0, 0, len(full), 4 + pad))
            f.write(full + b"FB" + struct.pack("<H", pad) + b"Z" * pad)
            crc, written = 0, 0
            for chunk in chunks():
                crc = zlib.crc32(chunk, crc)
                written += len(chunk)
                f.write(chunk)
            assert written == size, (name, written, size)
            if size:
                f.write(struct.pack("<IIII", 0x08074B50, crc, size, size))
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0, 0, flags, 0, 0, 0, crc, size, size,
                                   len(full), 0, 0, 0, 0, 0, offset) + full
        cd_offset = f.tell()
        f.write(central)
        eocd64 = f.tell()
        n = len(records)
        f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, n, n, len(central), cd_offset))
        f.write(struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1))
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_offset, 0))


def llama_state(layers, hidden, intermediate, vocab, kv_heads, heads, tie=False):
    """(name, shape) in LlamaForCausalLM.state_dict() order, and its _metadata module prefixes."""
    kv = hidden // heads * kv_heads
    names = [("model.embed_tokens.weight", (vocab, hidden))]
    modules = ["", "model", "model.embed_tokens", "model.layers"]
    for i in range(layers):
        L = f"model.layers.{i}"
        names += [(f"{L}.self_attn.q_proj.weight", (hidden, hidden)), (f"{L}.self_attn.k_proj.weight", (kv, hidden)),
                  (f"{L}.self_attn.v_proj.weight", (kv, hidden)), (f"{L}.self_attn.o_proj.weight", (hidden, hidden)),
                  (f"{L}.mlp.gate_proj.weight", (intermediate, hidden)), (f"{L}.mlp.up_proj.weight", (intermediate, hidden)),
                  (f"{L}.mlp.down_proj.weight", (hidden, intermediate)), (f"{L}.input_layernorm.weight", (hidden,)),
                  (f"{L}.post_attention_layernorm.weight", (hidden,))]
        modules += [L, f"{L}.self_attn", f"{L}.self_attn.q_proj", f"{L}.self_attn.k_proj", f"{L}.self_attn.v_proj",
                    f"{L}.self_attn.o_proj", f"{L}.mlp", f"{L}.mlp.gate_proj", f"{L}.mlp.up_proj", f"{L}.mlp.down_proj",
                    f"{L}.mlp.act_fn", f"{L}.input_layernorm", f"{L}.post_attention_layernorm"]
    names += [("model.norm.weight", (hidden,))]
    modules += ["model.norm", "model.rotary_emb", "lm_head"]
    if not tie:
        names += [("lm_head.weight", (vocab, hidden))]
    return names, [(m, 1) for m in modules]


def contiguous_strides(shape):
    strides, acc = [], 1
    for d in reversed(shape):
        strides.insert(0, acc)
        acc *= d
    return strides


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["llama"])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    a = ap.parse_args()
    cls, es = DTYPES[a.dtype]
    names, modules = llama_state(a.layers, a.hidden, a.intermediate, a.vocab, a.kv_heads, a.heads)
    tensors, storages = [], []
    for i, (name, shape) in enumerate(names):
        numel = 1
        for d in shape:
            numel *= d
        tensors.append((name, cls, str(i), numel, 0, list(shape), contiguous_strides(shape)))

        def chunks(nbytes=numel * es):
            block = os.urandom(1 << 20)  # incompressible-looking bytes; values do not matter here
            for off in range(0, nbytes, len(block)):
                yield block[: min(len(block), nbytes - off)]
        storages.append((str(i), numel * es, chunks))
    folder = os.path.splitext(os.path.basename(a.out))[0]
    write_torch_zip(a.out, folder, state_dict_pickle(tensors, modules), storages, "0" * 40)


if __name__ == "__main__":
    main()
