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

# A pipeline ending in gguf, whose destination is a file written through a temporary beside it:
# a sparse Llama of about the same size, the trained test Llama (its config and tokenizer) with
# MLPs 256000 wide.
python3 - "$td/llama-trained" "$scratch/big-llama" <<'PY'
import json, os, shutil, struct, sys
src, dst = sys.argv[1:]
os.makedirs(dst)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(src, f), dst)
config = json.load(open(os.path.join(src, "config.json")))
config["intermediate_size"] = width = 256000
json.dump(config, open(os.path.join(dst, "config.json"), "w"))
with open(os.path.join(src, "model.safetensors"), "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
header.pop("__metadata__", None)
at, out = 0, {}
for name, t in header.items():
    shape = t["shape"]
    if name.endswith(("gate_proj.weight", "up_proj.weight")): shape = [width, shape[1]]
    if name.endswith("down_proj.weight"): shape = [shape[0], width]
    n = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)
    out[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [at, at + n]}
    at += n
head = json.dumps(out).encode()
head += b" " * (-len(head) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head)
    f.truncate(8 + len(head) + at)
PY
echo '{"steps": [{"cast": {"dtype": "f32"}}, {"gguf": {"type": "q8_0"}}]}' >"$scratch/to-gguf.json"
interrupt INT 130 "run cast -> gguf" "$scratch/out.gguf" \
  "$ckpt" run "$scratch/to-gguf.json" "$scratch/big-llama" "$scratch/out.gguf" --threads 1
[ ! -e "$scratch/out.gguf.ckpt-manifest.json" ] && pass "run cast -> gguf: no manifest left" ||
  fail "run cast -> gguf: manifest left behind"

# validate, interrupted while it hashes the weights. Not after a fixed delay (a quiet machine hashes
# a few hundred MB before any delay ends, a loaded one has not started): a 16 GiB sparse tensor
# (no disk used) with a manifest, and the signal goes only once validate's mapping of the file has
# demonstrably grown past 256 MiB (RssFile + RssShmem in /proc/PID/status, tmpfs or not: pages of
# the weights it has read), when there are still about 16 GB to go whatever the machine's speed.
make_big 16384 "$scratch/huge"
python3 - "$scratch/huge" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
size = os.path.getsize(os.path.join(d, "model.safetensors"))
# Digests that cannot match: the run is stopped long before it would compare them.
json.dump({"files": {"model.safetensors": {"size": size, "header_digest": "0" * 16, "tensors": {"w": "0" * 16}}}},
          open(os.path.join(d, "ckpt-manifest.json"), "w"))
PY
mapped_kb() { awk '/^Rss(File|Shmem):/ { kb += $2; seen = 1 } END { if (seen) print kb }' "/proc/$1/status" 2>/dev/null; }
"$ckpt" validate "$scratch/huge" --cpu-only --report "$scratch/report.json" >/dev/null 2>"$scratch/.sigerr" &
pid=$!
reading=""
for _ in $(seq 1 6000); do  # up to 60 s for the structure and manifest phases on a loaded machine
  kb=$(mapped_kb "$pid")
  if [ -z "$kb" ]; then break; fi
  if [ "$kb" -gt 262144 ]; then reading=$kb; break; fi
  sleep 0.01
done
if [ -z "$reading" ]; then
  kill -KILL "$pid" 2>/dev/null
  wait "$pid"
  fail "validate: never seen reading the weights ($(cat "$scratch/.sigerr"))"
else
  t0=$(date +%s.%N)
  kill -INT "$pid"
  wait "$pid"
  code=$?
  took=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
  if [ "$code" != 130 ]; then fail "validate: SIGINT while hashing (${reading} kB mapped) -> exit $code, want 130 ($(cat "$scratch/.sigerr"))"
  elif ! python3 -c "import sys; sys.exit(0 if $took < 3 else 1)"; then fail "validate: took ${took}s to stop"
  elif [ -e "$scratch/report.json" ]; then fail "validate: a report was written after the interruption"
  elif ls -a "$scratch" | grep -q ckpt-tmp; then fail "validate: temporary left behind: $(ls -a "$scratch")"
  elif ! grep -q "interrupted" "$scratch/.sigerr"; then fail "validate: no 'interrupted' line: $(cat "$scratch/.sigerr")"
  else pass "validate: SIGINT while hashing (${reading} kB mapped) -> 130 in ${took}s, no report"
  fi
fi

# inspect (issue 12 item 18: it ignored SIGINT), interrupted while it opens the headers of a model
# of 400 safetensors files x 1000 tensors: the signal goes once /proc/PID/io shows it has read 2 MB
# of them (about a tenth), so it is demonstrably busy whatever the machine's speed. Exit 130, the
# "interrupted" line, and no report on stdout.
python3 - "$scratch/many" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
os.makedirs(d)
for f in range(400):
    header = {f"model.layers.{f}.t{i}.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
              for i in range(1000)}
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(os.path.join(d, f"part-{f:05d}.safetensors"), "wb") as out:
        out.write(struct.pack("<Q", len(head)) + head + bytes(4000))
PY
read_bytes() { awk '/^rchar:/ { print $2 }' "/proc/$1/io" 2>/dev/null; }
"$ckpt" inspect "$scratch/many" >"$scratch/inspect.out" 2>"$scratch/.sigerr" &
pid=$!
reading=""
for _ in $(seq 1 6000); do
  b=$(read_bytes "$pid")
  if [ -z "$b" ]; then break; fi
  if [ "$b" -gt 2000000 ]; then reading=$b; break; fi
  sleep 0.01
done
if [ -z "$reading" ]; then
  kill -KILL "$pid" 2>/dev/null
  wait "$pid"
  fail "inspect: never seen reading the headers (it finished or failed first: $(cat "$scratch/.sigerr"))"
else
  t0=$(date +%s.%N)
  kill -INT "$pid"
  wait "$pid"
  code=$?
  took=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
  if [ "$code" != 130 ]; then fail "inspect: SIGINT after ${reading} bytes read -> exit $code, want 130 ($(cat "$scratch/.sigerr"))"
  elif ! python3 -c "import sys; sys.exit(0 if $took < 3 else 1)"; then fail "inspect: took ${took}s to stop"
  elif [ -s "$scratch/inspect.out" ]; then fail "inspect: printed a report after the interruption"
  elif ! grep -q "interrupted" "$scratch/.sigerr"; then fail "inspect: no 'interrupted' line: $(cat "$scratch/.sigerr")"
  else pass "inspect: SIGINT after ${reading} bytes of headers read -> 130 in ${took}s, no report"
  fi
fi

finish
