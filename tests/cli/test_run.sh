# ckpt run: a pipeline gives the bytes of its subcommands run one after another (every pair of
# steps that can follow each other, longer chains, the named pipelines), writes no intermediate
# files, records the pipeline in the manifest, prints the composed plan with --dry-run, splits
# with --part like any writing command, and refuses an impossible chain before writing anything,
# naming the step.
source "$(dirname "$0")/lib.sh"

# same_files A B: the two directories hold the same files with the same bytes, manifests aside
# (a manifest records the command line).
same_files() {
  diff <(cd "$1" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) \
       <(cd "$2" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) >/dev/null
}

# step_args PIPELINE: one line per step, "COMMAND ARG ARG ..." (the options as the subcommand's
# command line, as `ckpt run` reads them: true = flag, a list repeats the option).
step_args() {
  python3 - "$1" <<'PY'
import json, sys
for step in json.load(open(sys.argv[1]))["steps"]:
    (cmd, opts), = step.items()
    args = [cmd]
    for k, v in opts.items():
        for item in (v if isinstance(v, list) else [v]):
            if item is True: args.append("--" + k)
            elif item is not False: args += ["--" + k, str(item)]
    print("\t".join(args))
PY
}

# check_pipeline LABEL PIPELINE SRC: `ckpt run` against the subcommands in sequence.
check_pipeline() {
  local label=$1 pipeline=$2 src=$3 prev=$3 i=0 line
  local -a args
  local work="$scratch/$label"
  mkdir -p "$work"
  while IFS=$'\t' read -r -a args; do
    i=$((i + 1))
    "$ckpt" "${args[0]}" "$prev" "$work/step$i" "${args[@]:1}" -q || { fail "$label: ckpt ${args[*]}"; return; }
    prev="$work/step$i"
  done < <(step_args "$pipeline")
  "$ckpt" run "$pipeline" "$src" "$work/run" -q || { fail "$label: ckpt run"; return; }
  if same_files "$prev" "$work/run"; then
    pass "$label: run = $i commands in sequence, byte for byte ($(find "$work/run" -type f | wc -l) files)"
  else
    fail "$label: differs: $(diff -rq -x ckpt-manifest.json "$prev" "$work/run" | head -3)"
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
# four-step chain, FP8 block scales sharded, and a safetensors source with several shards.
write_pipeline "$scratch/casts.json" '{"cast": {"dtype": "f32"}}' '{"cast": {"dtype": "f16"}}' '{"cast": {"dtype": "bf16"}}'
check_pipeline cast-cast-cast "$scratch/casts.json" "$td/llama-bin"
write_pipeline "$scratch/four.json" "${step[convert]}" "${step[cast]}" '{"quantize": {"fp8": true, "scheme": "block", "block": "8x8"}}' "${step[shard]}"
check_pipeline convert-cast-quantize-shard "$scratch/four.json" "$td/llama-bin"
write_pipeline "$scratch/four-rechunk.json" "${step[convert]}" "${step[cast]}" '{"quantize": {"fp8": true}}' "${step[rechunk]}"
check_pipeline convert-cast-quantize-rechunk "$scratch/four-rechunk.json" "$td/llama-bin-sharded"
write_pipeline "$scratch/moe.json" '{"cast": {"dtype": "f16"}}' '{"shard": {"tp": 2, "pp": 2}}'
check_pipeline mixtral-cast-shard-pp "$scratch/moe.json" "$td/mixtral"

# The named pipelines, by name, against their own steps in sequence, on a small synthetic Llama
# whose shapes every one of them accepts (8 heads for tp 8; K/tp a multiple of INT4's groups of
# 128 for tp 4), written by the benchmarks' generator beside the binary.
synthetic_bin="$(dirname "$ckpt")/tests/ckpt_make_synthetic"
"$synthetic_bin" "$scratch/synthetic" --layers 2 --hidden 512 --intermediate 1024 --heads 8 --kv-heads 8 --vocab 512 \
  >/dev/null || fail "ckpt_make_synthetic"
for p in "$td"/../recipes/pipelines/*.json; do
  name=$(basename "$p" .json)
  check_pipeline "named-$name" "$p" "$scratch/synthetic"
  "$ckpt" run "$name" "$scratch/synthetic" "$scratch/by-name" --dry-run >/dev/null &&
    pass "named pipeline '$name' found by name" || fail "named pipeline '$name' not found by name"
done

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

finish
