#!/usr/bin/env bash
# ckpt marlin on real `ckpt quantize --int4` outputs of the trained testdata model in every
# format (GPTQ sym/asym, AWQ, compressed-tensors sym/asym; group 32 and channelwise): the
# relayout is named in config.json, validate reads it and gives its source's --against numbers, refused by the commands that cannot read tiles (shard),
# --undo gives back every file bit for bit, and `quantize --layout marlin` gives the bytes of the
# two commands in one pass. Refusals: one line, exit 1 (usage errors: exit 2).
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

for case in "gptq --sym 32" "gptq --asym -1" "awq --asym 32" "compressed-tensors --sym -1" "compressed-tensors --asym 32"; do
  set -- $case
  n="$1$2$3"
  "$ckpt" quantize --int4 --format "$1" "$2" --group-size "$3" "$td/llama-trained" "$tmp/q-$n" -q
  "$ckpt" marlin "$tmp/q-$n" "$tmp/m-$n" -q
  grep -q '"quant_method": "ckpt_marlin"' "$tmp/m-$n/config.json" || fail "$n: config.json does not name the layout"
  [ ! -e "$tmp/m-$n/quantize_config.json" ] || fail "$n: quantize_config.json (plain GPTQ to old loaders) written"
  cmp -s "$tmp/q-$n/model.safetensors" "$tmp/m-$n/model.safetensors" && fail "$n: nothing relaid out"
  # inspect names the layout and the source scheme, as it gives it for the source.
  want="vLLM Marlin layout (ckpt marlin) of $("$ckpt" inspect "$tmp/q-$n" | sed -n 's/^quantization *//p')"
  got=$("$ckpt" inspect "$tmp/m-$n" | sed -n 's/^quantization *//p')
  [ "$got" = "$want" ] || fail "$n: inspect says '$got', not '$want'"
  "$ckpt" marlin --undo "$tmp/m-$n" "$tmp/u-$n" -q
  for f in model.safetensors config.json quantize_config.json; do
    [ -e "$tmp/q-$n/$f" ] || continue
    cmp -s "$tmp/q-$n/$f" "$tmp/u-$n/$f" || fail "$n: --undo changed $f"
  done
  pass "$n: relayout and --undo bit for bit"
  # --layout marlin: quantize and relayout in one pass give the bytes of the two commands.
  "$ckpt" quantize --int4 --format "$1" "$2" --group-size "$3" --layout marlin "$td/llama-trained" "$tmp/l-$n" -q
  diff <(cd "$tmp/m-$n" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) \
       <(cd "$tmp/l-$n" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) >/dev/null ||
    fail "$n: quantize --layout marlin differs from quantize then marlin"
  pass "$n: quantize --layout marlin = quantize, then marlin"
  # validate reads the Marlin checkpoint (structure, the CPU GEMM check and --against through the
  # arrays undone into the source format): the same comparison numbers as its INT4 source.
  for d in q m; do
    "$ckpt" validate --cpu-only "$tmp/$d-$n" --against "$td/llama-trained" --seq-len 8 --samples 2 --generate 2 --min-top1 0 --max-kl 100 \
      --report "$tmp/$d-$n.json" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; fail "$n: validate $d exit $?"; }
  done
  python3 - "$tmp/q-$n.json" "$tmp/m-$n.json" <<'PY' || fail "$n: validate of the Marlin checkpoint differs from its source's"
import json, sys
def phases(path):
    return {p["phase"]: p for p in json.load(open(path))["phases"]}
q, m = phases(sys.argv[1]), phases(sys.argv[2])
assert m["structure"]["details"]["int4_weights"] == q["structure"]["details"]["int4_weights"] == 28, m["structure"]
assert m["gemm (cpu)"]["details"]["weights"] == 28 and m["gemm (cpu)"]["status"] == "ok", m["gemm (cpu)"]
# Everything but the timings (details.seconds), which differ from run to run.
a, b = ({k: v for k, v in x["details"].items() if k != "seconds"} for x in (q["against (cpu)"], m["against (cpu)"]))
assert a == b, (a, b)
PY
  pass "$n: validate --cpu-only --against: the numbers of the INT4 source"
done

# A Marlin checkpoint validate must refuse: a scale that is not positive (named in the Marlin
# tensor), and a tensor the layout does not have (symmetric GPTQ's dropped qzeros).
python3 - "$tmp/m-gptq--sym32/model.safetensors" "$tmp/bad-scale.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n])
b, e = h["model.layers.1.mlp.up_proj.scales"]["data_offsets"]
data[8 + n + b + 2 * 7: 8 + n + b + 2 * 8] = b"\x00\x00"  # f16 zero at element 7
open(dst, "wb").write(data)
PY
mkdir -p "$tmp/bad1" && cp "$tmp/m-gptq--sym32/config.json" "$tmp/bad1/" && mv "$tmp/bad-scale.safetensors" "$tmp/bad1/model.safetensors"
set +e
"$ckpt" validate --cpu-only "$tmp/bad1" >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "model.layers.1.mlp.up_proj.scales.*source layout" "$tmp/err" || { cat "$tmp/err"; fail "zero Marlin scale: exit $rc"; }
mkdir -p "$tmp/bad2" && cp "$tmp/m-gptq--sym32/config.json" "$tmp/bad2/"
python3 - "$tmp/m-gptq--sym32/model.safetensors" "$tmp/q-gptq--sym32/model.safetensors" "$tmp/bad2/model.safetensors" <<'PY'
import json, struct, sys
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
def read(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    h = json.loads(data[8:8 + n]); h.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items()}
t = read(sys.argv[1])
t["model.layers.0.self_attn.q_proj.qzeros"] = read(sys.argv[2])["model.layers.0.self_attn.q_proj.qzeros"]
header, blob = {}, b""
for k in sorted(t):
    d, s, b = t[k]
    header[k] = {"dtype": d, "shape": s, "data_offsets": [len(blob), len(blob) + len(b)]}
    blob += b
hb = json.dumps(header).encode()
open(sys.argv[3], "wb").write(struct.pack("<Q", len(hb)) + hb + blob)
PY
set +e
"$ckpt" validate --cpu-only "$tmp/bad2" >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "q_proj.qzeros.*does not have" "$tmp/err" || { cat "$tmp/err"; fail "stray qzeros in a Marlin checkpoint: exit $rc"; }
pass "validate refuses a Marlin checkpoint with a zero scale or a tensor the layout drops"

# Commands that would split or reinterpret the tiles refuse with the way out.
set +e
"$ckpt" shard --tp 2 "$tmp/m-gptq--sym32" "$tmp/tp2" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "ckpt marlin --undo" "$tmp/err" || { cat "$tmp/err"; fail "shard of a Marlin checkpoint: exit $rc"; }
pass "shard refuses a Marlin checkpoint"

# Refusals: not INT4; relayout twice; --undo of a plain INT4 checkpoint; nothing left behind.
for args in "$td/llama $tmp/x1" "$tmp/m-awq--asym32 $tmp/x2" "--undo $tmp/q-awq--asym32 $tmp/x3"; do
  set +e
  "$ckpt" marlin $args 2>"$tmp/err"; rc=$?
  set -e
  [ "$rc" = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "marlin $args: exit $rc"; }
done
for args in "--fp8 --layout marlin" "--int4 --layout tiles"; do
  set +e
  "$ckpt" quantize $args "$td/llama-trained" "$tmp/x4" 2>"$tmp/err"; rc=$?
  set -e
  [ "$rc" = 2 ] && grep -q -- "--layout" "$tmp/err" || { cat "$tmp/err"; fail "quantize $args: exit $rc"; }
done
[ ! -e "$tmp/x1" ] && [ ! -e "$tmp/x2" ] && [ ! -e "$tmp/x3" ] && [ ! -e "$tmp/x4" ] || fail "a refused run left output"
pass "refusals"
echo "all passed"
