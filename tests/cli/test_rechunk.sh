# ckpt rechunk end to end: shard sizes, index, identical tensor bytes, refusals, --dry-run.
source "$(dirname "$0")/lib.sh"

"$ckpt" rechunk "$td/llama" "$scratch/out" --max-shard-size 60KB -q || fail "rechunk"
ls "$scratch/out"/model-0000?-of-0000?.safetensors >/dev/null && pass "shards written" || fail "no shards"
[ -f "$scratch/out/model.safetensors.index.json" ] && pass "index" || fail "index missing"
[ -f "$scratch/out/ckpt-manifest.json" ] && pass "manifest" || fail "manifest missing"
cmp -s "$scratch/out/tokenizer.json" "$td/llama/tokenizer.json" && pass "side files carried" || fail "tokenizer.json"

# Back to one file: byte-identical to the original (written by Python safetensors).
"$ckpt" rechunk "$scratch/out" "$scratch/one" -q || fail "rechunk back"
cmp -s "$scratch/one/model.safetensors" "$td/llama/model.safetensors" && pass "round trip is byte-identical" \
  || fail "round trip differs"

# Summary line on stderr, JSON summary with --json.
line=$("$ckpt" rechunk "$td/llama" "$scratch/s" 2>&1 >/dev/null)
grep -Eq "ckpt rechunk: 21 tensors, 205.44 KB in .* s \(.* [KMGT]?B/s\)" <<<"$line" && pass "summary line" || fail "summary: $line"
"$ckpt" rechunk "$td/llama" "$scratch/j" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["tensors"]==21' \
  && pass "--json summary" || fail "--json summary"

# --dry-run prints the plan and writes nothing.
"$ckpt" rechunk "$td/llama" "$scratch/dry" --dry-run | python3 -c 'import json,sys; p=json.load(sys.stdin); assert p["tensor_count"]==21' \
  && pass "dry-run plan" || fail "dry-run plan"
[ ! -e "$scratch/dry" ] && pass "dry-run wrote nothing" || fail "dry-run wrote output"

# Refusals: existing destination, destination inside the source, bad size.
expect_error 1 "destination_exists" "$ckpt" rechunk "$td/llama" "$scratch/out"
"$ckpt" rechunk "$td/llama" "$scratch/out" --force -q && pass "--force replaces" || fail "--force"
cp -r "$td/llama" "$scratch/src"
expect_error 1 "destination_in_source" "$ckpt" rechunk "$scratch/src" "$scratch/src/out"
expect_error 2 "max-shard-size" "$ckpt" rechunk "$td/llama" "$scratch/x" --max-shard-size 5parsecs
[ ! -e "$scratch/x" ] && [ ! -e "$scratch/src/out" ] && pass "refused runs left nothing" || fail "leftovers"
ls -a "$scratch" | grep -q ckpt-tmp && fail "temporary directory left behind" || pass "no temporary directories"

# A corrupt source fails cleanly and leaves no destination.
cp -r "$td/llama-sharded" "$scratch/bad"
truncate -s -10 "$scratch/bad/model-00002-of-00003.safetensors"
expect_error 1 "model-00002-of-00003.safetensors: .*incomplete_buffer" "$ckpt" rechunk "$scratch/bad" "$scratch/bad-out"
[ ! -e "$scratch/bad-out" ] && pass "no output after a failure" || fail "output left after failure"
finish
