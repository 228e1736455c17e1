# ckpt inspect: the table, --json, and one clear error for a corrupt file.
source "$(dirname "$0")/lib.sh"

out=$("$ckpt" inspect "$td/llama-sharded") || fail "inspect llama-sharded"
grep -q "architecture LlamaForCausalLM" <<<"$out" && pass "architecture" || fail "architecture missing: $out"
grep -q "21 tensors, 102720 parameters" <<<"$out" && pass "totals" || fail "totals: $out"

json=$("$ckpt" inspect --json "$td/mixtral") || fail "inspect --json"
python3 - "$json" <<'PY' && pass "json document" || fail "json document"
import json, sys
r = json.loads(sys.argv[1])
assert r["architecture"] == "MixtralForCausalLM", r["architecture"]
assert r["tensor_count"] == len(r["tensors"]) > 0
assert sum(t["bytes"] for t in r["tensors"]) == r["tensor_bytes"]
assert "BF16" in r["dtypes"]
assert "config.json" in r["side_files"]
PY

# Corrupt copies: truncated, and a header length pointing past the end.
cp "$td/llama/model.safetensors" "$scratch/trunc.safetensors"
truncate -s -1 "$scratch/trunc.safetensors"
expect_error 1 "trunc.safetensors: .*truncated.*incomplete_buffer" "$ckpt" inspect "$scratch/trunc.safetensors"
printf '\xff\xff\x00\x00\x00\x00\x00\x00{}' >"$scratch/len.safetensors"
expect_error 1 "invalid_header_length" "$ckpt" inspect "$scratch/len.safetensors"
expect_error 1 "no_checkpoint" "$ckpt" inspect "$scratch/missing"
mkdir "$scratch/empty"
expect_error 1 "no model.safetensors" "$ckpt" inspect "$scratch/empty"
"$ckpt" inspect >/dev/null 2>&1; [ $? = 2 ] && pass "usage error exits 2" || fail "usage exit code"

# The root of a TP/PP output, read as validate and merge read it: one line per rank (stage), what
# they hold together, and the note shard writes there on how a rank is loaded.
"$ckpt" shard "$td/llama" "$scratch/tp" --tp 2 -q && "$ckpt" shard "$td/llama" "$scratch/pp" --tp 2 --pp 2 -q
out=$("$ckpt" inspect "$scratch/tp") || fail "inspect of a TP root: $out"
grep -q "parallel output: tp_size 2, pp_size 1" <<<"$out" && grep -q "^  rank-0 " <<<"$out" && grep -q "^  rank-1 " <<<"$out" \
  && grep -q "in 2 ranks" <<<"$out" && grep -q "README.md (how a rank is loaded)" <<<"$out" \
  && pass "inspect of a TP root" || fail "inspect of a TP root: $out"
out=$("$ckpt" inspect "$scratch/pp") || fail "inspect of a PP root: $out"
grep -q "^  stage-1/rank-1 " <<<"$out" && grep -q "in 4 ranks" <<<"$out" && pass "inspect of a TP+PP root" || fail "inspect of a PP root: $out"
json=$("$ckpt" inspect --json "$scratch/pp") || fail "inspect --json of a PP root"
python3 - "$json" "$scratch/pp" <<'PY' && pass "inspect --json of a PP root" || fail "inspect --json of a PP root"
import json, sys
r = json.loads(sys.argv[1])
assert r["parallel"]["tp_size"] == 2 and r["parallel"]["pp_size"] == 2, r["parallel"]
assert [k["label"] for k in r["ranks"]] == ["stage-0/rank-0", "stage-0/rank-1", "stage-1/rank-0", "stage-1/rank-1"]
assert r["tensor_count"] == sum(k["tensor_count"] for k in r["ranks"]) == sum(len(k["tensors"]) for k in r["ranks"])
assert all(k["files"][0]["metadata"]["tp_rank"] == str(k["rank"]) for k in r["ranks"])
assert r["note"] == sys.argv[2] + "/README.md"
PY
# The note: how a rank is loaded, and what the layout is not (vLLM's sharded_state).
note="$scratch/tp/README.md"
grep -q "rank-<r>/" "$note" && grep -q "Loading a rank" "$note" && grep -q "sharded_state" "$note" \
  && grep -q "model-rank-{rank}-part-{part}.safetensors" "$note" && pass "shard writes the how-to-load note" \
  || fail "the note: $(cat "$note" 2>&1)"
grep -q "stage-<s>/rank-<r>/" "$scratch/pp/README.md" && pass "the note of a PP root names stage-<s>/rank-<r>/" || fail "PP note"
finish
