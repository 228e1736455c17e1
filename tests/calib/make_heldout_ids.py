#!/usr/bin/env python3
"""Writes more held-out token ids for the trained test Llama than heldout.safetensors' 2048, for
perplexity comparisons whose differences are small (`ckpt perplexity MODEL --ids OUT --seq-len 512`).

testdata/generate.py python_docstring_corpus() split the files of the GPU machine's Python 3.12
stdlib 90/10 by sha256 of "python3.12/<path>"; this applies the same rule to a local stdlib (paths
hashed as python3.12/...), one document per docstring with <s> first (`ckpt tokenize`, the model's
own tokenizer). With a 3.11 stdlib the first 2048 ids equal heldout.safetensors' (checked), and the
rest is text the model never trained on (held-out files; files 3.12 no longer has).
Usage: make_heldout_ids.py CKPT MODEL_DIR STDLIB_DIR OUT.json [--seq-len 512]
"""
import argparse, json, os, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("ckpt"); ap.add_argument("model"); ap.add_argument("stdlib"); ap.add_argument("out")
ap.add_argument("--seq-len", type=int, default=512)
a = ap.parse_args()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata"))
from docstring_corpus import docstring_split  # noqa: E402 (the split generate.py trained with)

_, docs = docstring_split([a.stdlib], lambda root, p: "python3.12/" + os.path.relpath(p, root))
ids = []
with tempfile.TemporaryDirectory() as tmp:
    f = os.path.join(tmp, "doc.txt")
    for d in docs:
        open(f, "w", encoding="utf-8").write(d)
        r = subprocess.run([a.ckpt, "tokenize", a.model, "--file", f, "--json"], capture_output=True, text=True, check=True)
        ids += json.loads(r.stdout)["ids"]
n = len(ids) // a.seq_len
json.dump([ids[i * a.seq_len:(i + 1) * a.seq_len] for i in range(n)], open(a.out, "w"))
print(f"{len(docs)} docstrings, {len(ids)} ids, {n} rows of {a.seq_len}")
