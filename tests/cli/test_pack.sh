# ckpt pack / unpack end to end: every file back byte for byte (bf16, f32, FP8, I64, sharded,
# tied, TP and PP roots), the same bytes at any thread count, every reading command on a packed
# source giving the outputs it gives on the unpacked one, inspect's ratios, and refusals of
# damaged containers naming the file, tensor and frame.
source "$(dirname "$0")/lib.sh"

same_tree() {  # A B: the same relative file list and every file identical
  local a=$1 b=$2
  diff <(cd "$a" && find . -type f | sort) <(cd "$b" && find . -type f | sort) >/dev/null || return 1
  (cd "$a" && find . -type f) | while read -r f; do cmp -s "$a/$f" "$b/$f" || exit 1; done
}
# Outputs of a command are the same: every file except the manifest, which records the source path.
same_output() {
  local a=$1 b=$2
  diff <(cd "$a" && find . -type f ! -name ckpt-manifest.json | sort) \
       <(cd "$b" && find . -type f ! -name ckpt-manifest.json | sort) >/dev/null || return 1
  (cd "$a" && find . -type f ! -name ckpt-manifest.json) | while read -r f; do cmp -s "$a/$f" "$b/$f" || exit 1; done
}

# Round trips of the bundled checkpoints: bf16 (trained), f32, sharded, tied, torch-zip weights,
# the edge cases (every dtype torch has, I64 and FP8 among them).
for d in llama-trained llama-f32 llama-sharded llama-tied llama-bin edge deepseek-v3; do
  "$ckpt" pack "$td/$d" "$scratch/p-$d" -q || fail "pack $d"
  "$ckpt" unpack "$scratch/p-$d" "$scratch/u-$d" -q || fail "unpack $d"
  same_tree "$td/$d" "$scratch/u-$d" && pass "$d: every file back byte for byte" || fail "$d: round trip differs"
done
[ "$(ls "$scratch/p-llama-trained")" = "checkpoint.ckptpack" ] && pass "one container per directory" || fail "packed layout"

# Same bytes at any thread count.
"$ckpt" pack "$td/llama-trained" "$scratch/t1" --threads 1 -q && "$ckpt" pack "$td/llama-trained" "$scratch/t3" --threads 3 -q
cmp -s "$scratch/t1/checkpoint.ckptpack" "$scratch/t3/checkpoint.ckptpack" && pass "deterministic across thread counts" \
  || fail "thread count changes the bytes"
# unpack writes straight to the disk when durable and through the page cache with --no-sync: the
# same bytes either way, at any thread count.
"$ckpt" unpack "$scratch/p-llama-trained" "$scratch/u1" --threads 1 --no-sync -q \
  && "$ckpt" unpack "$scratch/p-llama-trained" "$scratch/u3" --threads 3 -q \
  && same_tree "$td/llama-trained" "$scratch/u1" && same_tree "$td/llama-trained" "$scratch/u3" \
  && pass "unpack: same bytes durable or --no-sync, 1 or 3 threads" || fail "unpack: bytes depend on the write path"

# FP8 and TP/PP outputs: each rank packed, all back byte for byte.
"$ckpt" quantize "$td/llama" "$scratch/fp8" --fp8 -q || fail "quantize"
"$ckpt" shard "$td/llama" "$scratch/tp" --tp 2 -q || fail "shard tp"
"$ckpt" shard "$td/llama" "$scratch/pp" --tp 2 --pp 2 -q || fail "shard pp"
for d in fp8 tp pp; do
  "$ckpt" pack "$scratch/$d" "$scratch/p-$d" -q || fail "pack $d"
  "$ckpt" unpack "$scratch/p-$d" "$scratch/u-$d" -q || fail "unpack $d"
  same_tree "$scratch/$d" "$scratch/u-$d" && pass "$d: every file back byte for byte" || fail "$d: round trip differs"
done
[ -f "$scratch/p-tp/rank-1/checkpoint.ckptpack" ] && [ -f "$scratch/p-pp/stage-1/rank-1/checkpoint.ckptpack" ] \
  && pass "TP/PP roots: one container per rank" || fail "TP/PP layout"

# Every reading command on a packed source gives the outputs it gives on the plain one.
src=$td/llama-trained; p=$scratch/p-llama-trained
for cmd in "rechunk --max-shard-size 5MB" "cast --dtype f16" "quantize --fp8" "shard --tp 2" "shard --tp 2 --pp 2"; do
  # shellcheck disable=SC2086
  "$ckpt" $cmd "$src" "$scratch/plain-out" -q && "$ckpt" $cmd "$p" "$scratch/packed-out" -q \
    && same_output "$scratch/plain-out" "$scratch/packed-out" && pass "$cmd: packed source, same output" \
    || fail "$cmd: packed source differs"
  rm -rf "$scratch/plain-out" "$scratch/packed-out"
done
python3 - "$ckpt" "$src" "$p" <<'PY' && pass "inspect: same tensors, ratios per dtype and class" || fail "inspect on packed"
import json, subprocess, sys
ckpt, plain, packed = sys.argv[1:]
a = json.loads(subprocess.check_output([ckpt, "inspect", plain, "--json"]))
b = json.loads(subprocess.check_output([ckpt, "inspect", packed, "--json"]))
strip = lambda ts: [{k: v for k, v in t.items() if k != "file"} for t in ts]
assert strip(a["tensors"]) == strip(b["tensors"]) and a["dtypes"] == b["dtypes"] and a["side_files"] == b["side_files"]
r = b["packed"]
assert r["by_dtype"]["BF16"]["ratio"] > 1.2, r
assert set(r["by_class"]) >= {"embeddings", "attention", "mlp", "norms"}, r
PY
"$ckpt" inspect "$p" | grep -c "packed, by tensor class" >/dev/null && pass "inspect text shows ratios" || fail "inspect text"

# Damage: a flipped bit in a frame, truncation, trailing bytes; nothing written on refusal.
cp -r "$p" "$scratch/bad"
python3 - "$scratch/bad/checkpoint.ckptpack" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x04  # inside model.safetensors's tensor frames (the bulk of the container)
open(p, "wb").write(b)
PY
expect_error 1 "checkpoint.ckptpack/model.safetensors: tensor .*frame .*pack_corrupt" "$ckpt" unpack "$scratch/bad" "$scratch/bad-out"
expect_error 1 "pack_corrupt" "$ckpt" rechunk "$scratch/bad" "$scratch/bad-out2"
[ ! -e "$scratch/bad-out" ] && [ ! -e "$scratch/bad-out2" ] && pass "nothing written after corruption" || fail "output left"
cp -r "$p" "$scratch/trunc"; truncate -s -1 "$scratch/trunc/checkpoint.ckptpack"
expect_error 1 "pack_invalid" "$ckpt" unpack "$scratch/trunc" "$scratch/trunc-out"
expect_error 1 "pack_invalid" "$ckpt" inspect "$scratch/trunc"
expect_error 1 "already packed" "$ckpt" pack "$p" "$scratch/again"
expect_error 1 "not a packed checkpoint" "$ckpt" unpack "$td/llama" "$scratch/nope"
expect_error 1 "destination_exists" "$ckpt" pack "$td/llama" "$p"
finish
