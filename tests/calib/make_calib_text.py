#!/usr/bin/env python3
"""Writes testdata/calib/llama-trained-docstrings.txt: calibration text for `ckpt quantize --method gptq|awq`
on the trained test Llama, in the domain it was trained on (Python docstrings) but from a package
outside its training corpus (training.json lists the Python stdlib, sklearn, scipy, numpy, pandas,
transformers), so the held-out perplexity set never overlaps the calibration set.

Source: the docstrings of Debian bookworm's python3-pygments 2.14.0 (/usr/lib/python3/dist-packages/
pygments), files in sorted path order, each docstring cleaned by inspect.cleandoc, documents
separated by one blank line, cut at --max-bytes.
"""
import argparse
import ast
import inspect
import pathlib

ap = argparse.ArgumentParser()
ap.add_argument("--src", default="/usr/lib/python3/dist-packages/pygments")
ap.add_argument("--out", required=True)
ap.add_argument("--max-bytes", type=int, default=60000)
args = ap.parse_args()

docs = []
for path in sorted(pathlib.Path(args.src).rglob("*.py")):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            d = ast.get_docstring(node, clean=True)
            if d and len(d) > 80:
                docs.append(inspect.cleandoc(d).replace("\n\n", "\n"))
out, size = [], 0
for d in docs:
    if size + len(d) + 2 > args.max_bytes:
        break
    out.append(d)
    size += len(d) + 2
pathlib.Path(args.out).write_text("\n\n".join(out) + "\n", encoding="utf-8")
