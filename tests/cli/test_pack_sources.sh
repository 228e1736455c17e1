# Packed checkpoints as SRC of the commands that open files beyond the weights: validate (its
# manifests, digests, scales and CPU GEMM check, plain and TP/PP roots), gguf (the tokenizer from
# the container), merge and inspect of a packed TP/PP root, and `ckpt run` pipelines: each gives
# the verdict or the bytes it gives on the unpacked source (and validate --against and tokenize
# read a packed model); a corrupted frame fails validate with one line naming the file, the tensor
# and the frame.
source "$(dirname "$0")/lib.sh"

# Outputs are the same: every file except the manifest, which records the source path.
same_output() {
  if [ -f "$1" ]; then cmp -s "$1" "$2"; return; fi
  diff <(cd "$1" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) \
       <(cd "$2" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) >/dev/null
}

# flip CONTAINER TENSOR: flips one bit in the middle of the first frame of TENSOR's first group,
# located through the container's own tables (formats/pack_format.h).
flip() {
  python3 - "$@" <<'PY'
import json, struct, sys
path, tensor = sys.argv[1:]
b = bytearray(open(path, "rb").read())
(jlen,) = struct.unpack_from("<Q", b, 16)
head = json.loads(b[24:24 + jlen])
G = lambda r: (r["length"] + head["group_bytes"] - 1) // head["group_bytes"]
regions = [r for f in head["files"] for r in f["regions"]]
nframes = sum(G(r) * r["planes"] for r in regions)
ngroups = sum(G(r) for r in regions)
sizes = [struct.unpack_from("<I", b, 24 + jlen + 8 * i)[0] for i in range(nframes)]
offset, frame = 24 + jlen + 8 * (nframes + ngroups), 0
for r in regions:
    if r.get("tensor") == tensor:
        b[offset + sizes[frame] // 2] ^= 0x10
        open(path, "wb").write(b)
        sys.exit(0)
    for _ in range(G(r) * r["planes"]):
        offset += sizes[frame]
        frame += 1
sys.exit("no tensor " + tensor)
PY
}

# verdict DIR: validate --cpu-only's exit code, then per phase its name and status, and the
# summaries of the phases whose numbers do not depend on where the bytes came from; the
# checksum phase aside (a packed file is decoded, so checked, even where no manifest lists it).
verdict() {
  "$ckpt" validate "$1" --cpu-only --json 2>/dev/null >"$scratch/v.json"
  echo "exit $?"
  python3 - "$scratch/v.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for p in r["phases"]:
    if p["phase"] == "checksums (cpu)":
        assert p["status"] == "ok" or r["failures"], p
        continue
    print(p["phase"], p["status"], p["summary"] if p["phase"] in ("structure", "gemm (cpu)") else "")
print("failures", len(r["failures"]))
PY
}

# Sources: a rechunked (manifest, two shards) and an FP8 (scales) output, the trained model (no
# manifest), TP and PP roots (one manifest at the root naming rank-r/ files); each packed.
mkdir -p "$scratch/src" "$scratch/packed" "$scratch/named"
"$ckpt" rechunk "$td/llama-trained" "$scratch/src/rechunk" --max-shard-size 5MB -q || fail "rechunk"
"$ckpt" quantize "$td/llama" "$scratch/src/fp8" --fp8 -q || fail "quantize"
cp -r "$td/llama-trained" "$scratch/src/trained"
"$ckpt" shard "$td/llama" "$scratch/src/tp" --tp 2 -q || fail "shard tp"
"$ckpt" shard "$td/llama" "$scratch/src/pp" --tp 2 --pp 2 -q || fail "shard pp"
for d in rechunk fp8 trained tp pp; do
  "$ckpt" pack "$scratch/src/$d" "$scratch/packed/$d" -q || fail "pack $d"
done

# validate: the same verdict, structure and CPU GEMM numbers from the packed copy.
for d in rechunk fp8 trained tp pp; do
  a=$(verdict "$scratch/src/$d") b=$(verdict "$scratch/packed/$d")
  if [ "$a" = "$b" ] && grep -q "^exit 0" <<<"$a"; then pass "validate $d: packed, same verdict"
  else fail "validate $d: $(diff <(echo "$a") <(echo "$b") | head -5)"; fi
done
grep -q '"manifests": \[' "$scratch/v.json" && python3 - "$scratch/v.json" <<'PY' && pass "packed PP root: the root manifest read from its container" || fail "PP root manifest"
import json, sys
r = json.load(open(sys.argv[1]))
m = [p for p in r["phases"] if p["phase"] == "manifest"][0]
assert m["details"]["manifests"] == [m["details"]["manifests"][0]] and m["details"]["manifests"][0].endswith("pp/checkpoint.ckptpack/ckpt-manifest.json"), m
assert "4 weight files listed" in m["summary"], m
c = [p for p in r["phases"] if p["phase"] == "checksums (cpu)"][0]
assert c["status"] == "ok" and "4 files" in c["summary"], c
PY

# A corrupted frame: one line naming the file, the tensor and the frame; whether the manifest
# lists the file (rechunk), or only the container's own digests can tell (trained: no manifest,
# and an embedding, which no GEMM check reads), or the tensor is in a rank of a TP root.
cp -r "$scratch/packed/rechunk" "$scratch/bad1"
flip "$scratch/bad1/checkpoint.ckptpack" model.layers.1.mlp.down_proj.weight
expect_error 1 "checksum: .*bad1/checkpoint.ckptpack/model-0000[12]-of-00002.safetensors: tensor 'model.layers.1.mlp.down_proj.weight': frame 0 " \
  "$ckpt" validate "$scratch/bad1" --cpu-only
cp -r "$scratch/packed/trained" "$scratch/bad2"
flip "$scratch/bad2/checkpoint.ckptpack" model.embed_tokens.weight
expect_error 1 "checksum: .*bad2/checkpoint.ckptpack/model.safetensors: tensor 'model.embed_tokens.weight': frame 0 " \
  "$ckpt" validate "$scratch/bad2" --cpu-only
cp -r "$scratch/packed/tp" "$scratch/bad3"
flip "$scratch/bad3/rank-1/checkpoint.ckptpack" model.layers.0.self_attn.q_proj.weight
expect_error 1 "bad3/rank-1/checkpoint.ckptpack/model.safetensors: tensor 'model.layers.0.self_attn.q_proj.weight': frame 0 " \
  "$ckpt" validate "$scratch/bad3" --cpu-only
# A scale's frame: refused while the structure is checked.
cp -r "$scratch/packed/fp8" "$scratch/bad4"
flip "$scratch/bad4/checkpoint.ckptpack" model.layers.0.mlp.up_proj.weight_scale
expect_error 1 "scale: .*bad4/checkpoint.ckptpack/model.safetensors: tensor 'model.layers.0.mlp.up_proj.weight_scale': frame 0 " \
  "$ckpt" validate "$scratch/bad4" --cpu-only

# merge and inspect of a packed TP/PP root: the ranks and the root's files found in their containers.
for d in tp pp; do
  "$ckpt" merge "$scratch/src/$d" "$scratch/merged-plain-$d" -q && "$ckpt" merge "$scratch/packed/$d" "$scratch/merged-packed-$d" -q \
    && same_output "$scratch/merged-plain-$d" "$scratch/merged-packed-$d" && pass "merge $d: packed root, same output" \
    || fail "merge $d: packed root differs"
  python3 - "$ckpt" "$scratch/src/$d" "$scratch/packed/$d" <<'PY' && pass "inspect $d: packed root, same ranks and note" || fail "inspect $d packed root"
import json, subprocess, sys
ckpt, plain, packed = sys.argv[1:]
a = json.loads(subprocess.check_output([ckpt, "inspect", plain, "--json"]))
b = json.loads(subprocess.check_output([ckpt, "inspect", packed, "--json"]))
strip = lambda ts: [{k: v for k, v in t.items() if k != "file"} for t in ts]
assert [r["label"] for r in a["ranks"]] == [r["label"] for r in b["ranks"]]
for x, y in zip(a["ranks"], b["ranks"]):
    assert strip(x["tensors"]) == strip(y["tensors"]) and x["side_files"] == y["side_files"]
assert a["parallel"] == b["parallel"] and a["tensor_bytes"] == b["tensor_bytes"]
assert b["note"].endswith("checkpoint.ckptpack/README.md"), b.get("note")
PY
done

# gguf: the tokenizer (and its config) read from the container; the same file, byte for byte.
# The packed copy keeps the source's directory name: gguf names the model after it.
"$ckpt" pack "$td/llama-trained" "$scratch/named/llama-trained" -q || fail "pack llama-trained"
"$ckpt" gguf "$td/llama-trained" "$scratch/plain.gguf" -q && "$ckpt" gguf "$scratch/named/llama-trained" "$scratch/packed.gguf" -q \
  && cmp -s "$scratch/plain.gguf" "$scratch/packed.gguf" && pass "gguf: packed source, same bytes" || fail "gguf: packed source differs"

# The CPU runtime and the tokenizer from a packed model: validate --against either way round (the
# packed weights decoded once; the packed SRC's tokenizer reads the prompt), and tokenize.
"$ckpt" validate "$scratch/named/llama-trained" --cpu-only --against "$td/llama-trained" --seq-len 8 --samples 1 >"$scratch/a1" 2>&1 \
  && "$ckpt" validate "$td/llama-trained" --cpu-only --against "$scratch/named/llama-trained" --text "Hello world" >"$scratch/a2" 2>&1 \
  && grep -q "against (cpu) .* ok .*same weights: 8 positions, top-1 1.0000" "$scratch/a1" \
  && grep -q "against (cpu) .* ok .*same weights: 3 positions, top-1 1.0000" "$scratch/a2" \
  && pass "validate --against: packed DIR and packed SRC" || fail "validate --against packed: $(tail -2 "$scratch/a1" "$scratch/a2")"
[ "$("$ckpt" tokenize "$scratch/named/llama-trained" --text "Hello world" --json)" = \
  "$("$ckpt" tokenize "$td/llama-trained" --text "Hello world" --json)" ] && pass "tokenize: packed model, same ids" \
  || fail "tokenize packed model"

# ckpt run: the named GGUF pipeline and a directory pipeline from a packed SRC.
pipe=$(dirname "$0")/../../recipes/pipelines/gguf-q4_k.json
mkdir -p "$scratch/run-plain" "$scratch/run-packed"
"$ckpt" run "$pipe" "$td/llama-trained" "$scratch/run-plain/q4k.gguf" -q --no-sync \
  && "$ckpt" run "$pipe" "$scratch/named/llama-trained" "$scratch/run-packed/q4k.gguf" -q --no-sync \
  && same_output "$scratch/run-plain/q4k.gguf" "$scratch/run-packed/q4k.gguf" && pass "run gguf-q4_k: packed SRC, same bytes" \
  || fail "run gguf-q4_k: packed SRC differs"
printf '{"steps": [{"cast": {"dtype": "f16"}}, {"quantize": {"fp8": true}}, {"shard": {"tp": 2}}]}\n' >"$scratch/pipe.json"
"$ckpt" run "$scratch/pipe.json" "$td/llama-trained" "$scratch/run-plain/dir" -q --no-sync \
  && "$ckpt" run "$scratch/pipe.json" "$scratch/named/llama-trained" "$scratch/run-packed/dir" -q --no-sync \
  && same_output "$scratch/run-plain/dir" "$scratch/run-packed/dir" && pass "run cast+quantize+shard: packed SRC, same output" \
  || fail "run cast+quantize+shard: packed SRC differs"
finish
