# SIGINT and SIGTERM stop every command promptly with 128 + the signal (130, 143) and leave
# nothing behind: no destination, no temporary. Each run gets its signal while it is busy with a
# synthetic checkpoint of a few hundred MB (sparse, so it costs no disk) made in the scratch dir.
source "$(dirname "$0")/lib.sh"

# big.safetensors: one BF16 tensor of $1 MiB, all zeros, written sparse.
make_big() {
  python3 - "$1" "$2" <<'PY'
import json, os, struct, sys
mib, path = int(sys.argv[1]), sys.argv[2]
os.makedirs(path, exist_ok=True)
n = mib << 20
head = json.dumps({"w": {"dtype": "BF16", "shape": [n // 2], "data_offsets": [0, n]}}).encode()
head += b" " * (-len(head) % 8)
with open(os.path.join(path, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head)
    f.truncate(8 + len(head) + n)
with open(os.path.join(path, "config.json"), "w") as f:
    f.write("{}")
PY
}

# interrupt SIG CODE NAME DST CMD...: starts CMD, sends SIG after 0.4 s, and expects exit CODE
# within 3 s of the signal, and neither DST nor any temporary beside it afterwards.
interrupt() {
  local sig=$1 want=$2 name=$3 dst=$4
  shift 4
  "$@" 2>"$scratch/.sigerr" >/dev/null &
  local pid=$!
  sleep 0.4
  if ! kill -0 "$pid" 2>/dev/null; then fail "$name: finished before the signal (make the input larger)"; return; fi
  local t0 t1 code
  t0=$(date +%s.%N)
  kill -"$sig" "$pid"
  wait "$pid"
  code=$?
  t1=$(date +%s.%N)
  local took
  took=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
  if [ "$code" != "$want" ]; then fail "$name: SIG$sig -> exit $code, want $want ($(cat "$scratch/.sigerr"))"; return; fi
  if python3 -c "import sys; sys.exit(0 if $took < 3 else 1)"; then :; else fail "$name: took ${took}s to stop"; return; fi
  if [ -n "$dst" ] && [ -e "$dst" ]; then fail "$name: $dst left behind"; return; fi
  if ls -a "$scratch" | grep -q ckpt-tmp; then fail "$name: temporary left behind: $(ls -a "$scratch")"; return; fi
  grep -q "interrupted" "$scratch/.sigerr" || { fail "$name: no 'interrupted' line: $(cat "$scratch/.sigerr")"; return; }
  pass "$name: SIG$sig -> $code in ${took}s, nothing left"
}

make_big 768 "$scratch/big"
interrupt INT 130 "cast" "$scratch/out" "$ckpt" cast "$scratch/big" "$scratch/out" --dtype f16 --threads 1
interrupt TERM 143 "cast (TERM)" "$scratch/out" "$ckpt" cast "$scratch/big" "$scratch/out" --dtype f32 --threads 1

# validate is not interrupted here: on a quiet machine it hashes a copy of this size before a
# signal sent after 0.4 s arrives, so the check would depend on the machine's load.

finish
