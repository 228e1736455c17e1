# SIGINT and SIGTERM stop every command promptly with 128 + the signal (130, 143) and leave
# nothing behind: no destination, no temporary. Each run gets its signal while it is busy with a
# synthetic checkpoint of a few hundred MB (sparse, so it costs no disk) made in the scratch dir.
source "$(dirname "$0")/lib.sh"

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

make_sparse_model 768 "$scratch/big"
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
make_sparse_model 16384 "$scratch/huge" manifest

# interrupt_when_busy NAME PROBE THRESHOLD UNIT OUTPUT: the command started last in the background
# gets SIGINT once `PROBE PID` (a number read from /proc) passes THRESHOLD, when it is demonstrably
# busy whatever the machine's speed; it must exit 130 within 3 s with the "interrupted" line,
# leaving no temporary and nothing in OUTPUT (what it would have written).
interrupt_when_busy() {
  local name=$1 probe=$2 threshold=$3 unit=$4 output=$5 pid=$! reading="" v
  for _ in $(seq 1 6000); do  # up to 60 s to get there on a loaded machine
    v=$("$probe" "$pid")
    if [ -z "$v" ]; then break; fi
    if [ "$v" -gt "$threshold" ]; then reading=$v; break; fi
    sleep 0.01
  done
  if [ -z "$reading" ]; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    fail "$name: never seen busy (it finished or failed first: $(cat "$scratch/.sigerr"))"
    return
  fi
  local t0 code took
  t0=$(date +%s.%N)
  kill -INT "$pid"
  wait "$pid"
  code=$?
  took=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
  if [ "$code" != 130 ]; then fail "$name: SIGINT at $reading $unit -> exit $code, want 130 ($(cat "$scratch/.sigerr"))"
  elif ! python3 -c "import sys; sys.exit(0 if $took < 3 else 1)"; then fail "$name: took ${took}s to stop"
  elif [ -s "$output" ]; then fail "$name: $output written after the interruption"
  elif ls -a "$scratch" | grep -q ckpt-tmp; then fail "$name: temporary left behind: $(ls -a "$scratch")"
  elif ! grep -q "interrupted" "$scratch/.sigerr"; then fail "$name: no 'interrupted' line: $(cat "$scratch/.sigerr")"
  else pass "$name: SIGINT at $reading $unit -> 130 in ${took}s, nothing written"
  fi
}
mapped_kb() { awk '/^Rss(File|Shmem):/ { kb += $2; seen = 1 } END { if (seen) print kb }' "/proc/$1/status" 2>/dev/null; }
"$ckpt" validate "$scratch/huge" --cpu-only --report "$scratch/report.json" >/dev/null 2>"$scratch/.sigerr" &
interrupt_when_busy "validate while hashing" mapped_kb 262144 "kB mapped" "$scratch/report.json"

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
interrupt_when_busy "inspect while opening headers" read_bytes 2000000 "bytes read" "$scratch/inspect.out"

finish
