#!/usr/bin/env bash
# GPU benchmark of `ckpt validate` on a Llama-3-8B-shaped bf16 checkpoint (16.06 GB, synthetic
# weights written by ckpt's own writer, in the page cache): three runs; per run the load phase's
# GB/s against the pinned host-to-device floor the command measures in the same run, the GPU
# checksum time against the load time, the whole validate time and every phase's share, and peak
# RSS. Then the same model quantized to FP8 per-tensor (cuBLASLt FP8 path), validated once.
# Results: $OUT/bench-validate.json (or $CKPT_BENCH_DIR) and a table on stdout.
set -euo pipefail
ckpt=$(realpath "${1:?ckpt binary}")
synth=${CKPT_SYNTHETIC:-$(dirname "$ckpt")/tests/ckpt_make_synthetic}
work=${CKPT_BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench-validate}
out=${OUT:-$work}
mkdir -p "$work" "$out"
model=$work/llama8b
if [ ! -f "$model/config.json" ]; then
  start=$(date +%s.%N)
  "$synth" "$model" --layers 32 --hidden 4096 --intermediate 14336 --heads 32 --kv-heads 8 --vocab 128256 \
    --dtype bf16 --max-shard-size 5GB >/dev/null
  echo "generated $(du -sh "$model" | cut -f1) in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s"
fi
cat "$model"/*.safetensors >/dev/null  # in the page cache, as the target says

python3 - "$ckpt" "$model" "$out" "${CKPT_BENCH_RUNS:-3}" <<'PY'
import json, resource, statistics, subprocess, sys, time
ckpt, model, out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def validate(path, tag):
    report = f"{out}/validate-{tag}.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.time()
    p = subprocess.run([ckpt, "validate", path, "--report", report], capture_output=True, text=True)
    wall = time.time() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children so far, KiB
    print(p.stdout, p.stderr, sep="", end="")
    if p.returncode != 0:
        sys.exit(f"validate {tag} exit {p.returncode}")
    r = json.load(open(report))
    ph = {x["phase"]: x for x in r["phases"]}
    load, integ = ph["load"]["details"], ph["integrity (gpu)"]["details"]
    return {"wall_s": wall, "report_total_s": r["total_seconds"], "rss_mb": rss / 1024,
            "load_gbps": load["gbps"], "floor_gbps": load["floor_gbps"], "fraction_of_floor": load["fraction_of_floor"],
            "load_s": load["wall_seconds"], "read_busy_s": load["read_busy_seconds"], "h2d_busy_s": load["h2d_busy_seconds"],
            "hash_s": integ["hash_seconds"], "hash_fraction_of_load": integ["fraction_of_load"],
            "shares": {x["phase"]: round(x["share"], 4) for x in r["phases"]},
            "seconds": {x["phase"]: round(x["seconds"], 4) for x in r["phases"]}}

results = [validate(model, f"bf16-{i}") for i in range(runs)]
med = lambda k: statistics.median(r[k] for r in results)
summary = {"model": "Llama-3-8B shapes, bf16, 16.06 GB, page cache", "runs": results,
           "median": {k: med(k) for k in ["wall_s", "report_total_s", "load_gbps", "floor_gbps", "fraction_of_floor",
                                           "load_s", "hash_s", "hash_fraction_of_load", "rss_mb"]}}
print(json.dumps(summary["median"], indent=1))
json.dump(summary, open(f"{out}/bench-validate.json", "w"), indent=1)
PY

if [ "${CKPT_BENCH_FP8:-1}" = 1 ]; then
  fp8=$work/llama8b-fp8
  [ -f "$fp8/config.json" ] || "$ckpt" quantize --fp8 "$model" "$fp8" -q
  "$ckpt" validate "$fp8" --report "$out/validate-fp8.json"
fi

# The same model packed (ckpt pack): the load rate of the unpacked bytes beside the unpacked
# load's above, and the rate the loader threads decode at (overall and per thread).
if [ "${CKPT_BENCH_PACKED:-1}" = 1 ]; then
  packed=$work/llama8b-packed
  [ -f "$packed/checkpoint.ckptpack" ] || "$ckpt" pack "$model" "$packed" -q
  cat "$packed/checkpoint.ckptpack" >/dev/null
  "$ckpt" validate "$packed" --report "$out/validate-packed.json"
  python3 - "$out/validate-packed.json" "$out/bench-validate.json" <<'PY'
import json, sys
phases = {x["phase"]: x for x in json.load(open(sys.argv[1]))["phases"]}
p = phases["load"]["details"]
bench = json.load(open(sys.argv[2]))
plain = bench["median"]
plain_allocate = sorted(r["seconds"]["allocate"] for r in bench["runs"])[len(bench["runs"]) // 2]
print(f"packed: load {p['gbps']:.2f} GB/s of unpacked bytes ({100 * p['fraction_of_floor']:.0f}% of the floor), "
      f"unpacked {plain['load_gbps']:.2f} GB/s; decode {p['decode_gbps']:.2f} GB/s on {p['threads']} threads "
      f"({p['decode_gbps_per_thread']:.2f} GB/s per thread); allocate {phases['allocate']['seconds']:.2f} s "
      f"({phases['allocate']['details'].get('reused_bytes', 0) / 1e9:.2f} GB from the load's device copy), "
      f"unpacked {plain_allocate:.2f} s")
PY
fi

# With two GPUs: the model sharded --tp 2, validated with one rank per GPU and with both ranks in
# turn on one GPU; the report totals are wall clock.
if [ "$(nvidia-smi -L | grep -c '^GPU ')" -ge 2 ]; then
  tp2=$work/llama8b-tp2
  [ -f "$tp2/ckpt-manifest.json" ] || "$ckpt" shard --tp 2 "$model" "$tp2" -q
  cat "$tp2"/rank-*/*.safetensors >/dev/null
  for gpus in 0,1 0; do
    "$ckpt" validate "$tp2" --gpus "$gpus" --report "$work/validate-tp2.json" >/dev/null
    python3 - "$work/validate-tp2.json" "$gpus" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
loads = [p for p in r["phases"] if p["phase"] == "load"]
print(f"tp2 --gpus {sys.argv[2]}: total {r['total_seconds']:.2f} s wall (phases {r['phase_seconds']:.2f} s); load per rank: "
      + ", ".join(f"{p['target']} {p['details']['gbps']:.1f} GB/s ({100 * p['details']['fraction_of_floor']:.0f}% of floor)" for p in loads))
PY
  done
fi

# The targets last, so that a miss does not skip the cases above.
python3 - "$out/bench-validate.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["median"]
assert m["fraction_of_floor"] >= 0.80, f"load at {100 * m['fraction_of_floor']:.1f}% of the pinned H2D floor (goal >= 80%)"
assert m["hash_fraction_of_load"] < 0.10, "checksums cost 10% of the load or more"
PY
