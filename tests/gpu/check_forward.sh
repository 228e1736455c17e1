#!/usr/bin/env bash
# GPU machine: `ckpt forward --device cuda` against `--device cpu` (the float64 reference) through
# the command line: logits files within 1e-4 of the logit range for a dense, an MoE, the trained
# and a TP-2 model, and the same greedy continuation on the trained model.
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ckpt" shard --tp 2 "$td/qwen2" "$tmp/tp2" -q
for m in "$td/llama" "$td/qwen3-moe" "$td/llama-trained" "$tmp/tp2"; do
  "$ckpt" forward "$m" --ids 1,17,29,3,44,5,60 --device cpu --logits "$tmp/cpu.safetensors" >/dev/null
  "$ckpt" forward "$m" --ids 1,17,29,3,44,5,60 --device cuda --logits "$tmp/gpu.safetensors" >"$tmp/out"
  grep -q "device:" "$tmp/out" || fail "$m: no device line"
  python3 - "$tmp/cpu.safetensors" "$tmp/gpu.safetensors" "$m" <<'PY'
import json, struct, sys
def logits(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    s, e = h["logits"]["data_offsets"]
    return struct.unpack("<%df" % ((e - s) // 4), b[8 + n + s:8 + n + e])
a, b = logits(sys.argv[1]), logits(sys.argv[2])
rng = max(a) - min(a); d = max(abs(x - y) for x, y in zip(a, b))
print("%s: max |dlogit| %.3g = %.2e of the range" % (sys.argv[3], d, d / rng))
assert d <= 1e-4 * rng, "cuda logits differ from the cpu reference"
PY
done
"$ckpt" forward "$td/llama-trained" --ids 1,450,4086,338 --generate 24 --device cpu | grep generated >"$tmp/g-cpu"
"$ckpt" forward "$td/llama-trained" --ids 1,450,4086,338 --generate 24 --device cuda | grep generated >"$tmp/g-gpu"
cmp -s "$tmp/g-cpu" "$tmp/g-gpu" || { cat "$tmp/g-cpu" "$tmp/g-gpu"; fail "greedy continuations differ"; }
echo "check_forward: all passed"
