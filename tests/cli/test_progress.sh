# The progress display (tools/progress.cpp), seen as a user sees it: ckpt runs on a pseudo-terminal
# of a given width and everything it draws on stderr is read back. Each redraw fits the width (at
# 50 columns it once wrapped into 22 lines), shows an ETA and the current file when there is room,
# validate draws one for its checksum phase (it was silent), a long path gives way to the file's
# own name, and nothing is drawn with --quiet or when stderr is not a terminal. The runs are
# stopped with SIGINT once enough has been seen, so no machine is too fast or too slow for them.
source "$(dirname "$0")/lib.sh"

# 4 GiB, sparse, with a manifest that makes validate hash all of it.
make_sparse_model 4096 "$scratch/big" manifest

# on_tty COLUMNS OUT STAGE CMD...: runs CMD with stderr on a pseudo-terminal COLUMNS wide (stdout
# to /dev/null), sends it SIGINT once three redraws of STAGE showing an ETA have been drawn (or,
# with STAGE "-", after a second), and writes everything it drew to OUT.
on_tty() {
  local cols=$1 out=$2 stage=$3
  shift 3
  python3 - "$cols" "$out" "$stage" "$@" <<'PY'
import fcntl, os, pty, re, select, signal, struct, subprocess, sys, termios, time
cols, out, stage, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
os.close(slave)
data, start, stopped = b"", time.monotonic(), False
while True:
    if not stopped:
        if stage == "-":
            due = time.monotonic() - start > 1
        else:
            draws = [s for s in re.split(r"[\r\n]", data.decode(errors="replace")) if s.startswith(stage) and "ETA" in s]
            due = len(draws) >= 3
        if due:
            p.send_signal(signal.SIGINT)
            stopped = True
    if not select.select([master], [], [], 0.05)[0]:
        if p.poll() is not None and not stopped:
            stopped = True  # it finished on its own
        continue
    try:
        chunk = os.read(master, 1 << 16)
    except OSError:  # EIO: the terminal's last writer has gone
        break
    if not chunk:
        break
    data += chunk
p.wait()
open(out, "wb").write(data)
PY
}

# check_redraws FILE COLUMNS STAGE [MUST-CONTAIN...]: the redraws (what follows each '\r', with the
# erase sequence removed) of STAGE are at least three, each fits COLUMNS - 1, and some redraw holds
# every MUST-CONTAIN string.
check_redraws() {
  python3 - "$@" <<'PY'
import re, sys
path, cols, stage, musts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
text = open(path, "rb").read().decode()
segments = [s.replace("\x1b[K", "") for s in re.split(r"[\r\n]", text)]
draws = [s for s in segments if s.startswith(stage)]
assert len(draws) >= 3, f"{len(draws)} redraws of {stage!r} in {text!r}"
wide = [s for s in draws if len(s) > cols - 1]
assert not wide, f"redraws wider than {cols - 1} columns: {wide[:3]}"
for m in musts:
    assert any(m in s for s in draws), f"no redraw holds {m!r}: {draws[:5]}"
print(f"{len(draws)} redraws, the widest {max(map(len, draws))} columns")
PY
}

for cols in 50 160; do
  on_tty "$cols" "$scratch/cast$cols.tty" write "$ckpt" cast "$scratch/big" "$scratch/out$cols" --dtype f16 --threads 1 --no-sync
  extra=()
  [ "$cols" = 160 ] && extra=("model.safetensors" "[=")
  r=$(check_redraws "$scratch/cast$cols.tty" "$cols" write "ETA " "%" "${extra[@]}") \
    && pass "cast at $cols columns: $r" || fail "cast at $cols columns: $r"
done

# Under a long directory, so that the path does not fit: the file's own name is shown whole.
deep="$scratch/a-directory-with-a-rather-long-name-as-real-model-stores-have/another-level-of-it"
mkdir -p "$deep" && mv "$scratch/big" "$deep/big"
on_tty 120 "$scratch/validate.tty" "checksums (cpu)" "$ckpt" validate "$deep/big" --cpu-only
mv "$deep/big" "$scratch/big"
r=$(check_redraws "$scratch/validate.tty" 120 "checksums (cpu)" "ETA " "  model.safetensors") \
  && pass "validate draws progress while hashing: $r" || fail "validate progress: $r"

# --quiet on a terminal, and a pipe: no redraws at all.
on_tty 80 "$scratch/quiet.tty" - "$ckpt" cast "$scratch/big" "$scratch/q" --dtype f16 --threads 1 --no-sync -q
grep -q $'\r[a-z]' "$scratch/quiet.tty" && fail "--quiet drew: $(od -c "$scratch/quiet.tty" | head -3)" \
  || pass "--quiet draws nothing"
"$ckpt" cast "$scratch/big" "$scratch/p" --dtype f16 --threads 1 --no-sync 2>"$scratch/pipe.err" &
pid=$!
sleep 1
kill -INT "$pid" 2>/dev/null
wait "$pid"
grep -q $'\r' "$scratch/pipe.err" && fail "progress drawn into a pipe" || pass "no progress when stderr is not a terminal"
ls -a "$scratch" | grep -q "ckpt-tmp" && fail "temporaries left: $(ls -a "$scratch")" || pass "the interrupted runs left nothing"
finish
