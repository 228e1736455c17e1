# What the CLI prints for people: a summary in the right number ("1 tensor, 1 file"), a rate only
# when there is one to show (never "0.00 GB/s"), and stdout and stderr in the order they were
# written when both go into one pipe (issue 12: "singular/plural and '0.00 GB/s' fixed in
# summaries; messages not reordered when piped").
source "$(dirname "$0")/lib.sh"

# A one-tensor checkpoint: 64 bytes.
python3 - "$scratch/one" <<'PY'
import json, os, struct, sys
os.makedirs(sys.argv[1])
head = json.dumps({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}).encode()
head += b" " * (-len(head) % 8)
with open(os.path.join(sys.argv[1], "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + bytes(64))
with open(os.path.join(sys.argv[1], "config.json"), "w") as f:
    f.write("{}")
PY
line=$("$ckpt" rechunk "$scratch/one" "$scratch/o1" 2>&1 >/dev/null)
grep -q "^ckpt rechunk: 1 tensor, 64 B in [0-9.]* s.*, 1 file, peak RSS" <<<"$line" && pass "singular: $line" \
  || fail "singular summary: $line"
grep -q "0\.00 [KMGT]\?B/s" <<<"$line" && fail "a zero rate is printed: $line" || pass "no zero rate"
line=$("$ckpt" rechunk "$td/llama" "$scratch/o2" --max-shard-size 60KB 2>&1 >/dev/null)
grep -Eq "^ckpt rechunk: 21 tensors, 205.44 KB in [0-9.]+ s( \([0-9.]+ [KMGT]?B/s\))?, [0-9]+ files, peak RSS" <<<"$line" \
  && pass "plural: $line" || fail "plural summary: $line"
out=$("$ckpt" inspect "$scratch/one")
grep -q "total        1 tensor, 16 parameters, 64 B" <<<"$out" && pass "inspect total in the singular" || fail "inspect: $out"
# validate's phase table in the singular (it printed "1 files", "1 manifest(s)", "1 Linear weights").
"$ckpt" validate "$scratch/o1" --cpu-only >"$scratch/table1" 2>&1 || fail "validate o1: $(cat "$scratch/table1")"
for want in "1 directory, 1 tensor, 0 Linear weights" "1 manifest, 1 weight file listed" "1 file, 160 B hashed"; do
  grep -q "$want" "$scratch/table1" && pass "validate: '$want'" || fail "validate lacks '$want': $(cat "$scratch/table1")"
done
grep -Eq "\(s\)|(^|[^0-9])1 [A-Za-z]+s\b" "$scratch/table1" && fail "validate: a plural after 1: $(cat "$scratch/table1")" \
  || pass "validate: no '(s)' and no plural after 1"
# pack and unpack: "1 container", "1 file", and no rate for a run the clock cannot time.
line=$("$ckpt" pack "$scratch/one" "$scratch/p1" 2>&1 >/dev/null)
grep -q " 1 container, " <<<"$line" && pass "pack: $line" || fail "pack summary: $line"
grep -q "0\.00 [KMGT]\?B/s" <<<"$line" && fail "pack prints a zero rate: $line" || pass "pack: no zero rate"
line=$("$ckpt" unpack "$scratch/p1" "$scratch/u1" 2>&1 >/dev/null)
grep -q "^ckpt unpack: [0-9]* files\?, " <<<"$line" && ! grep -q "^ckpt unpack: 1 files" <<<"$line" \
  && pass "unpack: $line" || fail "unpack summary: $line"
grep -q "0\.00 [KMGT]\?B/s" <<<"$line" && fail "unpack prints a zero rate: $line" || pass "unpack: no zero rate"

# Piped together (2>&1), validate's table (stdout) comes before its failure lines (stderr), as
# on a terminal; a fully buffered stdout used to come out last.
"$ckpt" rechunk "$td/llama" "$scratch/v" -q || fail "rechunk"
python3 "$(dirname "$0")/../support/st_edit.py" flip "$scratch/v/model.safetensors" model.norm.weight 0
"$ckpt" validate "$scratch/v" --cpu-only >"$scratch/table" 2>/dev/null
grep -q '^total ' "$scratch/table" || fail "validate's table (stdout) has no total line"
"$ckpt" validate "$scratch/v" --cpu-only 2>&1 | cat >"$scratch/both"
table_at=$(grep -n '^total ' "$scratch/both" | head -1 | cut -d: -f1)
error_at=$(grep -n "check failed" "$scratch/both" | head -1 | cut -d: -f1)
if [ -n "$table_at" ] && [ -n "$error_at" ] && [ "$table_at" -lt "$error_at" ]; then
  pass "table (line $table_at) before the failure lines (line $error_at) when piped"
else
  fail "order when piped: table line ${table_at:-none}, first failure line ${error_at:-none}"; cat "$scratch/both"
fi
finish
