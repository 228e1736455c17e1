# --part i/n + ckpt finalize, for every writing command: n parts (run in any order, an empty one
# included) then finalize give the same bytes as one run; finalize refuses missing, foreign and
# corrupted parts naming them; a finished part run again is a no-op; --resume alone is a whole run.
source "$(dirname "$0")/lib.sh"

# same_files A B: the two directories hold the same files with the same bytes, manifests aside
# (a manifest records the command line, which names the destination).
same_files() {
  diff <(cd "$1" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) \
       <(cd "$2" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) >/dev/null
}

# check_parts LABEL N COMMAND SRC ARGS...: one run into DST, set aside; then parts N-1 ... 0 and
# finalize into the same DST (so the manifests' command lines agree); every file compared.
check_parts() {
  local label=$1 n=$2 sub=$3 src=$4
  shift 4
  local dst="$scratch/$label"
  "$ckpt" "$sub" "$src" "$dst" "$@" -q || { fail "$label: single run"; return; }
  mv "$dst" "$dst.ref"
  for ((i = n - 1; i >= 0; i--)); do
    "$ckpt" "$sub" "$src" "$dst" "$@" -q --part "$i/$n" || { fail "$label: part $i/$n"; return; }
  done
  [ ! -e "$dst" ] || fail "$label: a part wrote the destination itself"
  "$ckpt" finalize "$dst" -q || { fail "$label: finalize"; return; }
  if diff -r "$dst.ref" "$dst" >/dev/null; then
    pass "$label: $n parts + finalize = one run, byte for byte ($(find "$dst" -type f | wc -l) files)"
  else
    fail "$label: differs: $(diff -rq "$dst.ref" "$dst" | head -3)"
  fi
  [ ! -e "$dst.ckpt-parts" ] && pass "$label: staging removed" || fail "$label: staging left behind"
}

check_parts rechunk 3 rechunk "$td/llama-trained" --max-shard-size 2MB
check_parts convert 3 convert "$td/llama-bin-sharded" --max-shard-size 60KB
check_parts cast 2 cast "$td/llama" --dtype f32 --max-shard-size 100KB
check_parts quantize 2 quantize "$td/llama" --fp8 --scheme block
check_parts shard 3 shard "$td/mixtral" --tp 2 --pp 2
check_parts merge 2 merge "$scratch/shard.ref"

# Finalize before every part ran: refused, naming the missing parts; nothing written.
dst="$scratch/partial"
"$ckpt" rechunk "$td/llama-trained" "$dst" --max-shard-size 2MB -q --part 1/4 || fail "part 1/4"
expect_error 1 "missing: 0/4, 2/4, 3/4" "$ckpt" finalize "$dst"
[ ! -e "$dst" ] && pass "refused finalize wrote nothing" || fail "refused finalize wrote $dst"

# A finished part run again does nothing (its files keep their inode and time).
before=$(find "$dst.ckpt-parts/files" -type f -name '*.safetensors' -printf '%i %T@\n' | sort)
msg=$("$ckpt" rechunk "$td/llama-trained" "$dst" --max-shard-size 2MB --part 1/4 2>&1)
grep -q "had already finished" <<<"$msg" && pass "finished part again: $msg" || fail "re-run said: $msg"
after=$(find "$dst.ckpt-parts/files" -type f -name '*.safetensors' -printf '%i %T@\n' | sort)
[ "$before" = "$after" ] && pass "re-run left the staged files untouched" || fail "re-run rewrote staged files"

# Parts of another plan or another cut are refused before any work.
expect_error 1 "different plan" "$ckpt" rechunk "$td/llama-trained" "$dst" --max-shard-size 3MB --part 0/4
expect_error 1 "cut into 4 parts" "$ckpt" rechunk "$td/llama-trained" "$dst" --max-shard-size 2MB --part 0/3
expect_error 2 "is not I/N" "$ckpt" rechunk "$td/llama-trained" "$dst" --part 4/4
expect_error 2 "is not I/N" "$ckpt" rechunk "$td/llama-trained" "$dst" --part 1
expect_error 1 "no staging record" "$ckpt" finalize "$scratch/nothing"

# A staged file corrupted after its part finished: finalize names the tensor and writes nothing;
# the part run again rewrites the file and finalize then succeeds.
for i in 0 2 3; do "$ckpt" rechunk "$td/llama-trained" "$dst" --max-shard-size 2MB -q --part $i/4 || fail "part $i/4"; done
victim=$(find "$dst.ckpt-parts/files" -type f -name 'model-*.safetensors' | sort | head -1)
printf '\x55' | dd of="$victim" bs=1 seek=$(($(stat -c %s "$victim") - 10)) conv=notrunc status=none
expect_error 1 "do not match the digest" "$ckpt" finalize "$dst"
[ ! -e "$dst" ] && pass "corrupt part: nothing written" || fail "corrupt part: $dst written"
rm "$dst.ckpt-parts"/part-*-of-4.json
for i in 0 1 2 3; do "$ckpt" rechunk "$td/llama-trained" "$dst" --max-shard-size 2MB -q --part $i/4 || fail "part $i/4 again"; done
"$ckpt" finalize "$dst" -q && same_files "$dst" "$scratch/rechunk.ref" \
  && pass "corrupted file rewritten on the re-run, finalize then matches one run" || fail "after rewrite: differs"

# --resume alone: one resumable run, finalized at the end; the same bytes.
"$ckpt" cast "$td/llama" "$scratch/cast-resume" --dtype f32 --max-shard-size 100KB -q --resume || fail "--resume run"
same_files "$scratch/cast-resume" "$scratch/cast.ref" && pass "--resume alone writes the same files" || fail "--resume alone differs"
[ ! -e "$scratch/cast-resume.ckpt-parts" ] && pass "--resume: staging removed" || fail "--resume: staging left"
finish
