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
finish
