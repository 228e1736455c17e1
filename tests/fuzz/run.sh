#!/usr/bin/env bash
# `make fuzz` and CI: builds the libFuzzer targets with CMake against the library (clang, ASan +
# UBSan, CKPT_FUZZ: see tests/fuzz/CMakeLists.txt) and runs every tests/fuzz/fuzz_*.cpp target for
# FUZZ_SECONDS (default 300), seeded from the testdata files. Exits non-zero on the first crash,
# leak or sanitizer report; findings land in $FUZZ_DIR/crashes.
#   FUZZ_SECONDS=60 bash tests/fuzz/run.sh        # a shorter run
#   FUZZ_BUILD=build-asan                         # a build dir configured with CKPT_FUZZ=ON to reuse
#   FUZZ_DIR=build-fuzz/work                      # corpora and crashes (default)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${FUZZ_SECONDS:-300}
build=$(realpath -m "${FUZZ_BUILD:-$root/build-fuzz}")
out=$(realpath -m "${FUZZ_DIR:-$build/fuzz-work}")
mkdir -p "$out/crashes"

if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
        -DCKPT_SANITIZE=ON -DCKPT_FUZZ=ON -DCKPT_CUDA=OFF -DCKPT_BUILD_TESTS=OFF
fi
targets=()
for src in "$root"/tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
echo "fuzz: building ${targets[*]} and ckpt (it packs the packed container's seeds)"
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target "${targets[@]}" ckpt

# Seeds: real torch zips for the zip reader; their data.pkl pickles and the legacy streams
# (several pickles back to back) for the unpickler; real safetensors files (header and a little
# data) and hostile headers (deep nesting, duplicate keys) for the header parser; tokenizer.json
# files for the tokenizer.
for t in "${targets[@]}"; do mkdir -p "$out/seeds_$t" "$out/corpus_$t"; done
python3 - "$root/testdata" "$out" <<'PY'
import sys, zipfile, pathlib, struct
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
zips = [src / "llama-bin/pytorch_model.bin", src / "llama-tied/pytorch_model.bin", src / "edge/edge.bin",
        src / "malicious/malicious.bin"]
zips += sorted((src / "llama-bin-sharded").glob("*.bin"))
for p in zips:
    if p.exists():
        (out / "seeds_fuzz_zip_reader" / (p.parent.name + "_" + p.name)).write_bytes(p.read_bytes())
for p in [src / "edge/edge.bin", src / "llama-bin/pytorch_model.bin", src / "malicious/malicious.bin"]:
    z = zipfile.ZipFile(p)
    name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
    (out / "seeds_fuzz_unpickler" / (p.parent.name + "_data.pkl")).write_bytes(z.read(name))
for p in [src / "edge/edge_legacy.bin", src / "malicious/malicious_legacy.bin"]:
    (out / "seeds_fuzz_unpickler" / p.name).write_bytes(p.read_bytes()[15:])  # after the magic
st = out / "seeds_fuzz_safetensors_header"
for p in sorted(src.glob("*/*.safetensors")):
    b = p.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = b[8:8 + n]
    # The header with the data cut to what the header's first tensors need keeps seeds small.
    (st / (p.parent.name + "_" + p.name)).write_bytes(b[:8 + n] + b[8 + n:8 + n + 256])
    (st / (p.parent.name + "_" + p.name + ".header_only")).write_bytes(struct.pack("<Q", len(header)) + header)
def header_file(name, text):
    h = text.encode()
    h += b" " * (-len(h) % 8)
    (st / name).write_bytes(struct.pack("<Q", len(h)) + h)
deep = 100_000  # issue 12: this nesting crashed every command (recursive dump/copy)
header_file("deep_metadata", '{"__metadata__":{"a":' + "[" * deep + "]" * deep + "}}")
header_file("deep_dtype", '{"x":{"dtype":' + '{"a":' * deep + "1" + "}" * deep + ',"shape":[],"data_offsets":[0,0]}}')
header_file("nesting_127", '{"__metadata__":null,"x":{"dtype":"F32","shape":' + "[" * 126 + "]" * 126 + ',"data_offsets":[0,0]}}')
header_file("duplicate_key", '{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}')
# tokenizer.json: the WordLevel test file, and small byte-level and SentencePiece-style BPE files
# with every component the real ones use (Split regex, ByteLevel, Prepend/Replace, byte fallback,
# added tokens with lstrip/rstrip, TemplateProcessing, decoder chains).
import json
tj = out / "seeds_fuzz_tokenizer_json"
(tj / "wordlevel.json").write_bytes((src / "llama/tokenizer.json").read_bytes())
lvl = {"model": {"type": "BPE", "vocab": {c: i for i, c in enumerate(["H", "i", "\u0120", "w", "\u00c3", "\u00b6", "Hi", "\u0120w"])},
                 "merges": ["H i", "\u0120 w"], "ignore_merges": True},
       "added_tokens": [{"id": 8, "content": "<s>", "special": True, "lstrip": True, "rstrip": True}],
       "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
           {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|\\s+(?!\\S)|\\s+"},
            "behavior": "Isolated", "invert": False},
           {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
       "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                          "special_tokens": {"<s>": {"id": "<s>", "ids": [8], "tokens": ["<s>"]}}},
       "decoder": {"type": "ByteLevel"}}
(tj / "byte_level.json").write_text(json.dumps(lvl))
spm = {"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
       "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True,
                 "vocab": dict([("<unk>", 0), ("<s>", 1)] + [("<0x%02X>" % b, 2 + b) for b in range(256)] +
                               [("\u2581", 258), ("H", 259), ("i", 260), ("\u2581H", 261)]),
                 "merges": [["\u2581", "H"]]},
       "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                   {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}
(tj / "sentencepiece_style.json").write_text(json.dumps(spm))
PY

# Seeds for the packed container: small checkpoints packed by the ckpt being fuzzed.
for d in llama edge llama-tied; do
  rm -rf "$out/pack_tmp"
  "$build/ckpt" pack "$root/testdata/$d" "$out/pack_tmp" -q
  cp "$out/pack_tmp/checkpoint.ckptpack" "$out/seeds_fuzz_pack_reader/$d.ckptpack"
done
rm -rf "$out/pack_tmp"

run() {  # name
  local name=$1
  echo "fuzz: running $name for ${seconds}s"
  local start=$SECONDS rc=0
  (cd "$out/crashes" && "$build/tests/fuzz/$name" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 \
      -timeout=10 -print_final_stats=1 "$out/corpus_$name" "$out/seeds_$name" 2>&1 | tail -n 25) || rc=$?
  echo "fuzz: $name ran $((SECONDS - start))s, exit $rc"
  return "$rc"
}
for t in "${targets[@]}"; do run "$t"; done
echo "fuzz: no crash, leak or sanitizer report"
