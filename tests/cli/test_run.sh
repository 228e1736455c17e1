# ckpt run: a pipeline gives the bytes of its subcommands run one after another (every pair of
# steps that can follow each other, longer chains, the named pipelines, a GGUF file as the last
# step's output), writes no intermediate files, records the pipeline in the manifest, prints the
# composed plan with --dry-run, splits with --part like any writing command, refuses an impossible
# chain before writing anything, naming the step, and leaves nothing when a run fails midway.
source "$(dirname "$0")/lib.sh"

# same_files A B: the two directories hold the same files with the same bytes, manifests aside
# (a manifest records the command line); or the two files (a gguf output) have the same bytes.
same_files() {
  if [ -f "$1" ]; then cmp -s "$1" "$2"; return; fi
  diff <(cd "$1" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) \
       <(cd "$2" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) >/dev/null
}

# step_args PIPELINE: one line per step, "COMMAND ARG ARG ..." (tests/support/pipeline_steps.py).
step_args() { python3 "$(dirname "$0")/../support/pipeline_steps.py" "$1"; }

# check_pipeline LABEL PIPELINE SRC: `ckpt run` against the subcommands in sequence. Every output
# has the source's name (in its own directory), as gguf names the model after its source's
# directory. --no-sync: the bytes are compared here, not durability (test_output_dir).
check_pipeline() {
  local label=$1 pipeline=$2 src=$3 prev=$3 i=0 line name
  local -a args
  local work="$scratch/$label"
  name=$(basename "$src")
  mkdir -p "$work/run"
  while IFS=$'\t' read -r -a args; do
    i=$((i + 1))
    mkdir -p "$work/step$i"
    "$ckpt" "${args[0]}" "$prev" "$work/step$i/$name" "${args[@]:1}" -q --no-sync || { fail "$label: ckpt ${args[*]}"; return; }
    prev="$work/step$i/$name"
  done < <(step_args "$pipeline")
  "$ckpt" run "$pipeline" "$src" "$work/run/$name" -q --no-sync || { fail "$label: ckpt run"; return; }
  if same_files "$prev" "$work/run/$name"; then
    pass "$label: run = $i commands in sequence, byte for byte ($(find "$work/run/$name" -type f | wc -l) files)"
  else
    fail "$label: differs: $(diff -rq -x ckpt-manifest.json "$prev" "$work/run/$name" | head -3)"
  fi
  rm -rf "$work"
}

# write_pipeline FILE STEP...: a pipeline of the given JSON step objects.
write_pipeline() {
  local file=$1
  shift
  local IFS=,
  printf '{"steps": [%s]}\n' "$*" >"$file"
}

# One step of each command, with options that make every step do something on the tiny models
# (several shards, a real cast, FP8 codes and scales, two ranks).
declare -A step=(
  [convert]='{"convert": {"max-shard-size": "150KB"}}'
  [rechunk]='{"rechunk": {"max-shard-size": "60KB"}}'
  [cast]='{"cast": {"dtype": "f32", "keep": ["model.norm.weight"]}}'
  [quantize]='{"quantize": {"fp8": true, "scheme": "channel"}}'
  [shard]='{"shard": {"tp": 2, "max-shard-size": "40KB"}}'
  [int4]='{"quantize": {"int4": true, "group-size": 32}}'
)

# Every pair of steps that can follow each other: anything but shard first (shard writes rank
# directories, which no step reads), from a PyTorch source so that a first convert converts.
# (A checkpoint quantized one way is refused by a quantize of the other way: tested below.)
for a in convert rechunk cast quantize int4; do
  for b in convert rechunk cast quantize int4 shard; do
    [[ "$a$b" == quantizeint4 || "$a$b" == int4quantize ]] && continue
    write_pipeline "$scratch/$a-$b.json" "${step[$a]}" "${step[$b]}"
    check_pipeline "$a-$b" "$scratch/$a-$b.json" "$td/llama-bin"
  done
done

# Longer chains: producers nested three deep (a cast of a cast: each level its own buffer), the
# four-step chain, FP8 block scales sharded, a safetensors source with several shards, and Marlin
# tiles made from INT4 codes made on demand (on the trained Llama: Marlin needs K % 128).
write_pipeline "$scratch/casts.json" '{"cast": {"dtype": "f32"}}' '{"cast": {"dtype": "f16"}}' '{"cast": {"dtype": "bf16"}}'
check_pipeline cast-cast-cast "$scratch/casts.json" "$td/llama-bin"
write_pipeline "$scratch/four.json" "${step[convert]}" "${step[cast]}" '{"quantize": {"fp8": true, "scheme": "block", "block": "8x8"}}' "${step[shard]}"
check_pipeline convert-cast-quantize-shard "$scratch/four.json" "$td/llama-bin"
write_pipeline "$scratch/four-rechunk.json" "${step[convert]}" "${step[cast]}" '{"quantize": {"fp8": true}}' "${step[rechunk]}"
check_pipeline convert-cast-quantize-rechunk "$scratch/four-rechunk.json" "$td/llama-bin-sharded"
write_pipeline "$scratch/marlin.json" '{"quantize": {"int4": true, "group-size": 32}}' '{"marlin": {}}' "${step[rechunk]}"
check_pipeline int4-marlin-rechunk "$scratch/marlin.json" "$td/llama-trained"
write_pipeline "$scratch/moe.json" '{"cast": {"dtype": "f16"}}' '{"shard": {"tp": 2, "pp": 2}}'
check_pipeline mixtral-cast-shard-pp "$scratch/moe.json" "$td/mixtral"

# gguf last: its one file is the run's destination. It needs a tokenizer llama.cpp can run, so
# the source is the trained Llama (Llama-2's SentencePiece-style tokenizer.json): every step
# before it (gguf reads float tensors, so no quantize), Q/K rows permuted from a cast's produced
# bytes, ggml blocks (q4_k falls back to Q5_0/Q8_0 on its 128-wide rows, q8_0 is whole blocks).
step[gguf]='{"gguf": {"type": "q8_0"}}'
for a in convert rechunk cast; do
  write_pipeline "$scratch/$a-gguf.json" "${step[$a]}" "${step[gguf]}"
  check_pipeline "$a-gguf" "$scratch/$a-gguf.json" "$td/llama-trained"
done
write_pipeline "$scratch/to-gguf.json" "${step[rechunk]}" "${step[cast]}" '{"gguf": {"type": "q4_k"}}'
check_pipeline rechunk-cast-gguf-q4_k "$scratch/to-gguf.json" "$td/llama-trained"

# The named pipelines, by name, against their own steps in sequence, on a small synthetic Llama
# whose shapes every one of them accepts (8 heads for tp 8; K/tp a multiple of INT4's groups of
# 128 for tp 4), written by the benchmarks' generator beside the binary; those ending in gguf on
# the trained Llama, for its tokenizer.
synthetic_bin="$(dirname "$ckpt")/tests/ckpt_make_synthetic"
"$synthetic_bin" "$scratch/synthetic" --layers 2 --hidden 512 --intermediate 1024 --heads 8 --kv-heads 8 --vocab 512 \
  >/dev/null || fail "ckpt_make_synthetic"
for p in "$td"/../recipes/pipelines/*.json; do
  name=$(basename "$p" .json)
  src="$scratch/synthetic"
  grep -q '"gguf"' "$p" && src="$td/llama-trained"
  check_pipeline "named-$name" "$p" "$src"
  "$ckpt" run "$name" "$src" "$scratch/by-name" --dry-run >/dev/null &&
    pass "named pipeline '$name' found by name" || fail "named pipeline '$name' not found by name"
done
# A run ending in gguf records the pipeline in the manifest beside the file, as ckpt gguf does.
"$ckpt" run "$scratch/to-gguf.json" "$td/llama-trained" "$scratch/g.gguf" -q --no-sync || fail "run to a gguf file"
python3 - "$scratch/g.gguf.ckpt-manifest.json" <<'PY' && pass "gguf run: manifest beside the file records the pipeline" || fail "gguf run manifest"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["command"] == "run" and [s["command"] for s in m["pipeline"]] == ["rechunk", "cast", "gguf"], m
PY

# The manifest records the pipeline; --dry-run prints the composed plan and writes nothing.
"$ckpt" run "$scratch/four-rechunk.json" "$td/llama-bin" "$scratch/m" -q || fail "run for the manifest"
python3 - "$scratch/m/ckpt-manifest.json" <<'PY' && pass "manifest records the pipeline" || fail "manifest lacks the pipeline"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["command"] == "run", m["command"]
assert [s["command"] for s in m["pipeline"]] == ["convert", "cast", "quantize", "rechunk"], m["pipeline"]
assert m["pipeline"][2]["options"] == {"fp8": True}
PY
"$ckpt" run "$scratch/four-rechunk.json" "$td/llama-bin" "$scratch/dry" --dry-run >"$scratch/plan.json" || fail "dry run"
python3 - "$scratch/plan.json" <<'PY' && pass "--dry-run prints the composed plan" || fail "--dry-run plan"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["command"] == "run" and len(p["notes"]["pipeline"]) == 4
# rechunk copies the FP8 codes quantize makes from the cast of the converted tensor, on demand.
codes = [t["producer"] for f in p["files"] for t in f["tensors"] if t["dtype"] == "F8_E4M3"]
assert codes, "no FP8 tensor"
for c in codes:
    q = c["pieces"][0]["produced"]
    assert c["op"] == "copy" and q["op"] == "fp8 e4m3fn codes", c
    assert q["source"]["produced"]["op"] == "cast BF16->F32", q
PY
[ ! -e "$scratch/dry" ] && pass "--dry-run wrote nothing" || fail "--dry-run wrote $scratch/dry"

# --part i/n: the parts of a pipeline then finalize = one run.
"$ckpt" run "$scratch/four-rechunk.json" "$td/llama-bin" "$scratch/parts" -q --part 1/2 || fail "part 1/2"
"$ckpt" run "$scratch/four-rechunk.json" "$td/llama-bin" "$scratch/parts" -q --part 0/2 || fail "part 0/2"
"$ckpt" finalize "$scratch/parts" -q || fail "finalize"
same_files "$scratch/m" "$scratch/parts" && pass "run --part 0/2, 1/2 + finalize = one run" || fail "parts differ from one run"
grep -q '"pipeline"' "$scratch/parts/ckpt-manifest.json" && pass "finalized manifest records the pipeline" ||
  fail "finalized manifest lacks the pipeline"

# Impossible chains and bad pipelines: refused before anything is written, naming the step.
write_pipeline "$scratch/after-shard.json" "${step[shard]}" "${step[rechunk]}"
expect_error 1 "step 2 (rechunk): .*one directory per rank" "$ckpt" run "$scratch/after-shard.json" "$td/llama" "$scratch/x"
write_pipeline "$scratch/after-gguf.json" "${step[gguf]}" "${step[cast]}"
expect_error 2 "step 2 (cast): cannot follow step 1 (gguf), which writes one file" "$ckpt" run "$scratch/after-gguf.json" "$td/llama-trained" "$scratch/x"
write_pipeline "$scratch/quantize-gguf.json" "${step[quantize]}" "${step[gguf]}"
expect_error 1 "step 2 (gguf): llama.cpp.s llama architecture has no tensor" "$ckpt" run "$scratch/quantize-gguf.json" "$td/llama-trained" "$scratch/x"
write_pipeline "$scratch/requant.json" '{"quantize": {"fp8": true}}' '{"quantize": {"fp8": true, "scheme": "block"}}'
expect_error 1 "step 2 (quantize)" "$ckpt" run "$scratch/requant.json" "$td/llama" "$scratch/x"
write_pipeline "$scratch/bad-keep.json" "${step[rechunk]}" '{"cast": {"dtype": "f16", "keep": ["no.such.tensor"]}}'
expect_error 2 "step 2 (cast): --keep 'no.such.tensor' matches no tensor" "$ckpt" run "$scratch/bad-keep.json" "$td/llama" "$scratch/x"
write_pipeline "$scratch/bad-dtype.json" '{"cast": {"dtype": "int3"}}'
expect_error 2 "step 1 (cast): --dtype must be" "$ckpt" run "$scratch/bad-dtype.json" "$td/llama" "$scratch/x"
write_pipeline "$scratch/bad-option.json" '{"cast": {"dtype": "f16", "colour": "red"}}'
expect_error 2 "step 1 (cast):.*colour" "$ckpt" run "$scratch/bad-option.json" "$td/llama" "$scratch/x"
write_pipeline "$scratch/write-option.json" '{"cast": {"dtype": "f16", "force": true}}'
expect_error 2 "step 1 (cast):.*force" "$ckpt" run "$scratch/write-option.json" "$td/llama" "$scratch/x"
write_pipeline "$scratch/merge.json" '{"merge": {}}'
expect_error 2 "step 1: 'merge' is not a step" "$ckpt" run "$scratch/merge.json" "$td/llama" "$scratch/x"
write_pipeline "$scratch/missing.json" '{"shard": {}}'
expect_error 2 "step 1 (shard):.*--tp" "$ckpt" run "$scratch/missing.json" "$td/llama" "$scratch/x"
echo '{"steps": []}' >"$scratch/empty.json"
expect_error 2 "non-empty \"steps\"" "$ckpt" run "$scratch/empty.json" "$td/llama" "$scratch/x"
expect_error 2 "no named pipeline" "$ckpt" run no-such-pipeline "$td/llama" "$scratch/x"
[ ! -e "$scratch/x" ] && pass "refused pipelines wrote nothing" || fail "a refused pipeline wrote $scratch/x"

# A run that fails midway leaves nothing: a NaN in the last layer's down_proj passes planning and
# stops gguf's block encoder (llama.cpp refuses non-finite weights) while other tensors are written.
mkdir -p "$scratch/nan"
cp "$td"/llama-trained/*.json "$scratch/nan/"
python3 - "$td/llama-trained/model.safetensors" "$scratch/nan/model.safetensors" <<'PY'
import json, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n])
last = max(int(k.split(".")[2]) for k in h if k.startswith("model.layers."))
t = h[f"model.layers.{last}.mlp.down_proj.weight"]
assert t["dtype"] == "BF16"
at = 8 + n + t["data_offsets"][1] - 2
data[at:at + 2] = b"\xc0\x7f"  # BF16 NaN, the tensor's last element
open(sys.argv[2], "wb").write(data)
PY
mkdir -p "$scratch/failed"
expect_error 2 "blk.*ffn_down.weight.*not finite" "$ckpt" run "$scratch/to-gguf.json" "$scratch/nan" "$scratch/failed/out.gguf"
[ -z "$(ls -A "$scratch/failed")" ] && pass "a run that failed midway left nothing" || fail "a failed run left: $(ls -A "$scratch/failed")"

finish
