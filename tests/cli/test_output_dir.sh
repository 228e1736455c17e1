# The output directory: permissions follow the umask, a trailing '/' on DST works, a run killed
# with SIGKILL leaves a temporary that the next run recognises and removes (only when its owner
# is provably gone), --force onto a symlink replaces the link without crossing file systems, and
# the output is durable: every file and directory synced before the rename (not with --no-sync),
# and a failed fsync or close fails the run (injected with LD_PRELOAD=libckpt_io_faults.so).
source "$(dirname "$0")/lib.sh"
faults=${3:?usage: test_output_dir.sh ckpt testdata libckpt_io_faults.so}

# Permissions: 0777/0666 less the umask, like cp and zstd (it was 0700 whatever the umask).
for m in 022 002 077; do
  ( umask $m && "$ckpt" rechunk "$td/llama" "$scratch/u$m" -q ) || fail "rechunk with umask $m"
  want_d=$(printf '%o' $((0777 & ~0$m))); want_f=$(printf '%o' $((0666 & ~0$m)))
  got_d=$(stat -c %a "$scratch/u$m"); got_f=$(stat -c %a "$scratch/u$m/model.safetensors")
  got_m=$(stat -c %a "$scratch/u$m/ckpt-manifest.json"); got_s=$(stat -c %a "$scratch/u$m/config.json")
  [ "$got_d/$got_f/$got_m/$got_s" = "$want_d/$want_f/$want_f/$want_f" ] && pass "umask $m: dir $got_d, files $got_f" \
    || fail "umask $m: dir $got_d files $got_f/$got_m/$got_s, want $want_d/$want_f"
done
( umask 022 && "$ckpt" shard "$td/llama" "$scratch/tp" --tp 2 -q ) || fail "shard"
[ "$(stat -c %a "$scratch/tp/rank-1")" = 755 ] && pass "rank directories follow the umask" || fail "rank-1 is $(stat -c %a "$scratch/tp/rank-1")"

# A trailing slash on DST names the same directory.
"$ckpt" rechunk "$td/llama" "$scratch/slash/" -q && [ -f "$scratch/slash/model.safetensors" ] \
  && pass "DST with a trailing slash" || fail "DST with a trailing slash"
expect_error 1 "destination_exists" "$ckpt" rechunk "$td/llama" "$scratch/slash/"

# SIGKILL leaves a temporary named after its destination and pid; the next run removes it.
python3 - "$scratch/big" <<'PY'
import json, os, struct, sys
os.makedirs(sys.argv[1])
n = 768 << 20
head = json.dumps({"w": {"dtype": "BF16", "shape": [n // 2], "data_offsets": [0, n]}}).encode()
head += b" " * (-len(head) % 8)
with open(os.path.join(sys.argv[1], "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head)
    f.truncate(8 + len(head) + n)
PY
"$ckpt" cast "$scratch/big" "$scratch/k" --dtype f32 --threads 1 -q &
pid=$!
sleep 0.5
kill -KILL $pid
wait $pid 2>/dev/null
stale=$(ls -a "$scratch" | grep "^\.k\.ckpt-tmp-$pid-" || true)
[ -n "$stale" ] && pass "SIGKILL left $stale" || fail "no temporary named after pid $pid: $(ls -a "$scratch")"
err=$("$ckpt" rechunk "$td/llama" "$scratch/k" 2>&1 >/dev/null)
grep -q "removed the stale temporary .*\.k\.ckpt-tmp-$pid-.* (left by pid $pid, which is gone)" <<<"$err" \
  && pass "the next run reports and removes it" || fail "stale temporary not reported: $err"
ls -a "$scratch" | grep -q "^\.k\.ckpt-tmp-" && fail "stale temporary still there" || pass "no temporary left"
[ -f "$scratch/k/model.safetensors" ] && pass "and writes its own output" || fail "no output after cleanup"

# A temporary whose owner still runs, or whose lock is held, is left alone (and said so).
sleep 30 &
alive=$!
mkdir "$scratch/.l.ckpt-tmp-$alive-abcdef"
dead=$(python3 -c 'import os
p = 4000000
while True:
    try: os.kill(p, 0); p -= 1
    except ProcessLookupError: print(p); break
    except PermissionError: p -= 1')
mkdir "$scratch/.l.ckpt-tmp-$dead-locked"
flock "$scratch/.l.ckpt-tmp-$dead-locked" sleep 30 &
locker=$!
# Not a fixed delay (a loaded machine may not have run flock yet): until the lock is seen held.
for _ in $(seq 1 600); do flock -n "$scratch/.l.ckpt-tmp-$dead-locked" true || break; sleep 0.05; done
err=$("$ckpt" rechunk "$td/llama" "$scratch/l" 2>&1 >/dev/null)
grep -q "left .*\.l\.ckpt-tmp-$alive-abcdef: its owner, pid $alive, is still running" <<<"$err" \
  && [ -d "$scratch/.l.ckpt-tmp-$alive-abcdef" ] && pass "a live owner's temporary is kept" || fail "live owner: $err"
grep -q "left .*\.l\.ckpt-tmp-$dead-locked: another process holds its lock" <<<"$err" \
  && [ -d "$scratch/.l.ckpt-tmp-$dead-locked" ] && pass "a locked temporary is kept" || fail "locked: $err"
kill $alive $locker 2>/dev/null
wait $alive $locker 2>/dev/null
rm -rf "$scratch"/.l.ckpt-tmp-*

# --force onto a symlink: the link is replaced by the output; what it pointed to is untouched,
# even on another file system (the temporary lives beside the link, so the rename stays local).
other=$(mktemp -d /dev/shm/ckpt-other-XXXXXX 2>/dev/null || mktemp -d)
echo keep >"$other/marker"
ln -s "$other" "$scratch/link"
"$ckpt" rechunk "$td/llama" "$scratch/link" --force -q && [ -d "$scratch/link" ] && [ ! -L "$scratch/link" ] \
  && [ -f "$scratch/link/model.safetensors" ] && [ "$(cat "$other/marker")" = keep ] \
  && pass "--force onto a symlink replaces the link" || fail "--force onto a symlink"
rm -rf "$other"

# --force replaces an existing output in one exchange, leaving no old copy or temporary.
"$ckpt" rechunk "$td/llama" "$scratch/u022" --max-shard-size 60KB --force -q || fail "--force"
[ -f "$scratch/u022/model.safetensors.index.json" ] && [ ! -e "$scratch/u022/model.safetensors" ] \
  && pass "--force replaced the old output" || fail "--force left old files: $(ls "$scratch/u022")"
ls -a "$scratch" | grep -q "ckpt-tmp" && fail "temporaries left: $(ls -a "$scratch")" || pass "no temporaries after --force"
# Durability: every output file and directory is fsync'ed under its temporary name before the
# rename, then the parent directory after it (the log lists what was synced).
LD_PRELOAD="$faults" CKPT_FAULT_LOG="$scratch/sync.log" "$ckpt" rechunk "$td/llama" "$scratch/synced" \
  --max-shard-size 60KB -q || fail "rechunk under the fault library"
python3 - "$scratch" "$scratch/sync.log" <<'PY' && pass "every output file and directory synced before the rename" || fail "sync log: $(cat "$scratch/sync.log")"
import os, re, sys
scratch, log = os.path.realpath(sys.argv[1]), sys.argv[2]
synced = [l.split(" ", 1)[1].strip() for l in open(log)]
temp = [p for p in synced if re.fullmatch(re.escape(scratch) + r"/\.synced\.ckpt-tmp-\d+-\w+", p)]
assert len(temp) == 1, synced
files = sorted(os.listdir(os.path.join(scratch, "synced")))
assert len(files) >= 4, files
for f in files:
    assert temp[0] + "/" + f in synced, (f, synced)
assert synced.index(scratch) > synced.index(temp[0]), synced  # the parent last, after the rename
PY
LD_PRELOAD="$faults" CKPT_FAULT_LOG="$scratch/nosync.log" "$ckpt" rechunk "$td/llama" "$scratch/unsynced" -q --no-sync \
  || fail "--no-sync run"
grep -q "ckpt-tmp" "$scratch/nosync.log" 2>/dev/null && fail "--no-sync synced: $(cat "$scratch/nosync.log")" \
  || pass "--no-sync syncs nothing of the output"

# A failed fsync or close (EIO) is a failed run: one error line naming the file, no destination,
# no temporary. --no-sync skips the fsync, so the same fault does not fail it.
expect_error 1 "/\.eio\.ckpt-tmp-[0-9]*-[A-Za-z0-9]*/.*: fsync failed: Input/output error \[io\]" \
  env LD_PRELOAD="$faults" CKPT_FAULT_FSYNC=/.eio.ckpt-tmp- "$ckpt" rechunk "$td/llama" "$scratch/eio" -q
expect_error 1 "/\.eio\.ckpt-tmp-[0-9]*-[A-Za-z0-9]*/.*: close failed (the data may not have been written): Input/output error \[io\]" \
  env LD_PRELOAD="$faults" CKPT_FAULT_CLOSE=/.eio.ckpt-tmp- "$ckpt" rechunk "$td/llama" "$scratch/eio" -q
[ ! -e "$scratch/eio" ] && ! ls -a "$scratch" | grep -q "eio.ckpt-tmp" && pass "nothing left after EIO" \
  || fail "left after EIO: $(ls -a "$scratch")"
env LD_PRELOAD="$faults" CKPT_FAULT_FSYNC=/.eio.ckpt-tmp- "$ckpt" rechunk "$td/llama" "$scratch/eio" -q --no-sync \
  && pass "--no-sync does not reach the failing fsync" || fail "--no-sync with a failing fsync"
finish
