#!/usr/bin/env bash
# On the GPU machine, the first device call of a session, in one command (device windows are short
# and the tool returns only the last 12,000 characters): every GPU test (run_ctest.sh), then
# validate of the Llama-3-8B-shaped bf16 checkpoint and of its packed copy, alternating, with the
# phase times compact — load GB/s against the pinned floor, allocate and how much of it came from
# the load's device copy. Bundle made here by gpu_tests_bundle.sh.
#
#   bash tests/gpu/remote/first_call.sh BUNDLE.tar.xz [RUNS]
set -uo pipefail
root=$(bash "$(dirname "$0")/setup.sh" "${1:?usage: first_call.sh BUNDLE.tar.xz [RUNS]}") || exit 1
export LD_LIBRARY_PATH=$root/lib-bundle
B=$root/build
runs=${2:-2}
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }
nvidia-smi -L
timeout 360 bash "$(dirname "$0")/../run_ctest.sh" "$B" 2>&1 | tail -30
stamp "run_ctest exit ${PIPESTATUS[0]}"
w=${CKPT_BENCH_DIR:-/tmp/ckpt-bench-validate}
mkdir -p "$w"
[ -f "$w/llama8b/config.json" ] || "$B/tests/ckpt_make_synthetic" "$w/llama8b" --layers 32 --hidden 4096 \
  --intermediate 14336 --heads 32 --kv-heads 8 --vocab 128256 --dtype bf16 --max-shard-size 5GB >/dev/null
[ -f "$w/llama8b-packed/checkpoint.ckptpack" ] || "$B/ckpt" pack "$w/llama8b" "$w/llama8b-packed" -q
stamp "8B checkpoint and its packed copy ready"
cat "$w"/llama8b/*.safetensors "$w"/llama8b-packed/* >/dev/null
for ((i = 0; i < runs; i++)); do
  for s in llama8b llama8b-packed; do
    timeout 120 "$B/ckpt" validate "$w/$s" --report "$w/$s.json" >/dev/null 2>"$w/$s.err" || tail -3 "$w/$s.err"
    python3 - "$w/$s.json" "$s" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ph = {x["phase"]: x for x in r["phases"]}
l, a = ph["load"]["details"], ph["allocate"]["details"]
print(f"{sys.argv[2]}: total {r['total_seconds']:.2f} s; load {l['gbps']:.1f} GB/s = {100 * l['fraction_of_floor']:.1f}% "
      f"of the floor; allocate {ph['allocate']['seconds']:.2f} s ({a.get('reused_bytes', 0) / 1e9:.2f} of "
      f"{a['weight_bytes'] / 1e9:.2f} GB from the load's copy); "
      + " ".join(f"{x['phase']}={x['seconds']:.2f}" for x in r["phases"]))
PY
  done
done
stamp done
