#!/usr/bin/env bash
# GPU benchmark of `ckpt validate DST --against SRC` (issue 15's goal: <= 30 s for the whole
# command): a Llama-3-8B-shaped bf16 source (synthetic, in the page cache) against its FP8
# per-tensor output on 4 x 512 seeded tokens, the forwards on the GPU (phase "against (cuda)"),
# --cpu-only so that only the comparison runs after the CPU structure checks. Prints the wall time
# and the phase's split (load src, load dst, forwards built, layers, diffs, logits, generate);
# results in $OUT/bench-against.json (or $CKPT_BENCH_DIR).
set -euo pipefail
ckpt=$(realpath "${1:?ckpt binary}")
CKPT_BENCH_DIR=${CKPT_BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench-validate}  # gpu_validate.sh's model, made once
source "$(dirname "$0")/lib.sh"
work=$bench_dir
out=${OUT:-$work}
mkdir -p "$out"
model=$(synthetic llama8b --layers 32 --hidden 4096 --intermediate 14336 --heads 32 --kv-heads 8 --vocab 128256 \
  --dtype bf16 --max-shard-size 5GB)
fp8=$work/llama8b-fp8
[ -f "$fp8/config.json" ] || "$ckpt" quantize --fp8 "$model" "$fp8" -q
cat "$model"/*.safetensors "$fp8"/*.safetensors >/dev/null  # in the page cache

python3 - "$ckpt" "$model" "$fp8" "$out" <<'PY'
import json, subprocess, sys, time
ckpt, src, dst, out = sys.argv[1:5]
report = f"{out}/against-8b.json"
t = time.time()
# Exit 1 is a verdict (synthetic weights are not a model FP8 keeps to the default top-1): timed all the same.
p = subprocess.run([ckpt, "validate", dst, "--against", src, "--cpu-only", "--against-device", "cuda",
                    "--samples", "4", "--seq-len", "512", "--generate", "8", "--report", report],
                   capture_output=True, text=True)
wall = time.time() - t
print(p.stderr[-4000:], end="")
r = json.load(open(report))
ph = [x for x in r["phases"] if x["phase"].startswith("against")]
assert ph, "no against phase: exit %d" % p.returncode
a = ph[0]
res = {"wall_s": round(wall, 2), "exit": p.returncode, "phase": a["phase"], "phase_s": round(a["seconds"], 2),
       "split_s": {k: round(v, 2) for k, v in a["details"]["seconds"].items()},
       "shares": {x["phase"]: round(x["share"], 4) for x in r["phases"]}}
print(json.dumps(res, indent=1))
json.dump(res, open(f"{out}/bench-against.json", "w"), indent=1)
assert a["phase"] == "against (cuda)", "the comparison did not run on the GPU"
if wall > 30:
    print(f"NOTE: {wall:.1f} s, over the 30 s goal of issue 15")
PY
