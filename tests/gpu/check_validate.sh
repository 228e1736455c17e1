#!/usr/bin/env bash
# GPU machine: ckpt validate's GPU phases on real outputs of the other commands (bf16 rechunk,
# FP8 per-tensor / block / channel from quantize, TP from shard, an MoE, INT4 and its Marlin
# layout), each must pass with every GPU phase reported (the warm-up a real decode step; an MoE's
# graphs skipped with the reason); with two GPUs, a TP output's ranks load side by side, one per
# GPU; a flipped byte must be named by the GPU checksum; a model the runtime cannot run (DeepSeek-V3)
# exits 3 saying so.
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
"$ckpt" quantize --int4 --format gptq --asym --group-size 32 "$td/llama-trained" "$tmp/int4" -q
"$ckpt" quantize --int4 --format gptq --asym --group-size 32 --layout marlin "$td/llama-trained" "$tmp/marlin" -q
for d in bf16 fp8-tensor fp8-block fp8-channel fp8-moe tp2 tp2-fp8 int4 marlin; do
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
targets = {p.get('target') for p in r['phases'] if p['phase'] == 'integrity (gpu)'}
assert targets == {'rank-0@gpu0', 'rank-1@gpu1'}, targets
assert [p.get('target') for p in r['phases'] if p['phase'] == 'graphs'] == ['all ranks@gpu0']
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
# --io: gds (cuFile; compatibility mode without the nvidia-fs driver) and auto pass and say how
# they read; a missing libcufile falls back to posix naming why. The first layer's arrival is timed.
io_of() {  # REPORT: "IO|NOTE|first-layer seconds" of its load phase
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); d=[p for p in r['phases'] if p['phase'].startswith('load')][0]['details']; print(d['io'], d['io_note'], d.get('first_layer_seconds', -1), sep='|')" "$1"
}
for io in posix gds auto; do
  "$ckpt" validate "$tmp/bf16" --io $io --report "$out/io-$io.json" >/dev/null || fail "--io $io did not pass"
  echo "-- --io $io: $(io_of "$out/io-$io.json")"
done
python3 - "$out/io-posix.json" "$out/io-auto.json" <<'PY'
import json, sys
load = lambda f: [p for p in json.load(open(f))['phases'] if p['phase'] == 'load'][0]['details']
p, a = load(sys.argv[1]), load(sys.argv[2])
assert p['io'] == 'posix' and 0 <= p['first_layer_seconds'] <= p['wall_seconds'], p
assert 'auto chose ' + ('gds' if a['io'].startswith('gds') else 'posix') in a['io_note'], a['io_note']
PY
CKPT_CUFILE_LIBRARY=/nonexistent/libcufile.so.0 "$ckpt" validate "$tmp/bf16" --io gds --report "$out/io-missing.json" >/dev/null ||
  fail "--io gds without libcufile did not fall back"
case "$(io_of "$out/io-missing.json")" in
  "posix|gds unavailable, read with posix: "*"/nonexistent/libcufile.so.0"*) ;;
  *) fail "--io gds without libcufile: $(io_of "$out/io-missing.json")" ;;
esac

# A copy staged in /dev/shm: validate --from-shm reports its load apart, then the copy is dropped.
name=ckpt-check-$$
"$ckpt" stage "$tmp/tp2" --shm $name -q || fail "stage into /dev/shm"
"$ckpt" validate --from-shm $name --report "$out/shm.json" >/dev/null || { "$ckpt" stage --drop $name; fail "--from-shm did not pass"; }
"$ckpt" stage --drop $name -q
python3 - "$out/shm.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r['from_shm']['name'].startswith('ckpt-check-'), r.get('from_shm')
assert sum(p['phase'] == 'load (shm)' for p in r['phases']) == 2, [p['phase'] for p in r['phases']]
PY
# A model the runtime cannot compute: load and integrity run, then exit 3 saying why, no warm-up.
set +e
"$ckpt" validate "$td/deepseek-v3" --report "$out/deepseek.json" >/dev/null 2>"$tmp/err"
rc=$?
set -e
[ "$rc" = 3 ] && grep -q "runtime cannot run this model.*DeepseekV3ForCausalLM" "$tmp/err" || { cat "$tmp/err"; fail "deepseek-v3: exit $rc"; }
python3 - "$out/deepseek.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
names = [p['phase'] for p in r['phases']]
assert 'integrity (gpu)' in names and 'warm-up' not in names and 'graphs' not in names, names
assert r['runtime']['ran'] is False, r['runtime']
PY
echo "validate GPU checks: ok"
