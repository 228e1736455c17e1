#!/usr/bin/env bash
# GPU machine: ckpt validate's GPU phases on real outputs of the other commands (bf16 rechunk,
# FP8 per-tensor / block / channel from quantize, TP from shard, an MoE), each must pass with every
# GPU phase reported; with two GPUs, a TP output's ranks run side by side, one per GPU; a flipped
# byte must be named by the GPU checksum.
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp  # reports stay here: $OUT on the lent machine takes only 8 files
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ckpt" rechunk "$td/llama" "$tmp/bf16" -q
"$ckpt" quantize --fp8 "$td/llama" "$tmp/fp8-tensor" -q
"$ckpt" quantize --fp8 --scheme block --block 32x32 "$td/qwen3" "$tmp/fp8-block" -q
"$ckpt" quantize --fp8 --scheme channel "$td/llama" "$tmp/fp8-channel" -q
"$ckpt" quantize --fp8 "$td/qwen3-moe" "$tmp/fp8-moe" -q
"$ckpt" shard --tp 2 "$td/llama" "$tmp/tp2" -q
"$ckpt" shard --tp 2 "$tmp/fp8-channel" "$tmp/tp2-fp8" -q
for d in bf16 fp8-tensor fp8-block fp8-channel fp8-moe tp2 tp2-fp8; do
  echo "-- validate $d"
  "$ckpt" validate "$tmp/$d" --report "$out/validate-$d.json" || fail "$d did not pass"
  python3 - "$out/validate-$d.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
names = {p['phase'] for p in r['phases']}
need = {'structure', 'manifest', 'load', 'integrity (gpu)', 'allocate', 'warm-up', 'graphs'}
assert need <= names, need - names
assert r['passed']
PY
done

gpus=$(nvidia-smi -L | grep -c '^GPU ' || true)
if [ "$gpus" -ge 2 ]; then
  echo "-- validate tp2-fp8 --gpus 0,1 (each rank on its own GPU)"
  "$ckpt" validate "$tmp/tp2-fp8" --gpus 0,1 --report "$out/validate-gpus.json" || fail "tp2-fp8 on two GPUs did not pass"
  python3 - "$out/validate-gpus.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
targets = {p.get('target') for p in r['phases'] if p['phase'] == 'graphs'}
assert targets == {'rank-0@gpu0', 'rank-1@gpu1'}, targets
PY
else
  echo "-- one GPU: ranks on their own GPUs not checked (needs 2)"
fi

cp -r "$tmp/fp8-tensor" "$tmp/flip"
python3 "$(dirname "$0")/../support/st_edit.py" flip "$tmp/flip/model.safetensors" model.layers.0.self_attn.o_proj.weight 9
set +e
"$ckpt" validate "$tmp/flip" 2>"$tmp/err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "flipped byte: exit $rc"
grep -q "checksum: .*model.safetensors: tensor 'model.layers.0.self_attn.o_proj.weight': digest .* computed on the gpu" "$tmp/err" ||
  { cat "$tmp/err"; fail "flipped byte not named by the GPU checksum"; }
echo "validate GPU checks: ok"
