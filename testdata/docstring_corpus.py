"""The prose the trained test Llama learned from and is measured on: docstrings of Python files,
split 90/10 into training and held-out text by a hash of each file's path, so the held-out text
is text the model never saw. Shared by generate.py (which trains the model on the GPU machine) and
tests/calib/make_heldout_ids.py (which rebuilds a longer held-out set elsewhere); no torch here.
"""
import ast
import hashlib
import os

SKIPPED_DIRS = ("test", "tests", "idlelib", "site-packages", "__pycache__")


def docstring_split(roots, rel_name):
    """(train, held) docstrings longer than 40 characters of every .py file under `roots`, walked in
    sorted order; a file is held out when sha256 of rel_name(root, path) is 0 mod 10."""
    train, held = [], []
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for fn in sorted(files):
                if not fn.endswith(".py"):
                    continue
                p = os.path.join(dirpath, fn)
                try:
                    tree = ast.parse(open(p, encoding="utf-8").read())
                except Exception:  # noqa: BLE001 (a file this Python cannot parse is skipped)
                    continue
                docs = []
                for node in ast.walk(tree):
                    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                        d = ast.get_docstring(node)
                        if d and len(d) > 40:
                            docs.append(d.strip())
                if not docs:
                    continue
                rel = rel_name(root, p)
                bucket = held if int(hashlib.sha256(rel.encode()).hexdigest(), 16) % 10 == 0 else train
                bucket.extend(docs)
    return train, held
