#!/usr/bin/env bash
# GPU benchmark of validate's load by each way of reading (issue 22), on the Llama-3-8B-shaped bf16
# checkpoint gpu_validate.sh uses (same directory; generated here when missing), page cache warm:
#  - --io posix and --io gds (cuFile; compatibility mode where the nvidia-fs driver is absent),
#    CKPT_BENCH_RUNS runs each (default 5): load GB/s, % of the pinned H2D floor measured in the
#    same run, time to layer 0 against the whole load; medians and spread;
#  - --io auto once: which it chose and why;
#  - cold cache: the model's pages dropped before each run (posix_fadvise DONTNEED through
#    `dd iflag=nocache count=0`, which needs no privilege; `fincore` says how much stayed), the load
#    against the storage's own read speed of the same files measured cold in the same run (one `dd`
#    per shard, all at once, as the loader reads them);
#  - the model staged in /dev/shm (skipped, with stage's reason, when /dev/shm is too small), loaded
#    by one process, then by 4 processes at once: per process and aggregate GB/s.
# Results: $OUT/bench-load-io.json (or $CKPT_BENCH_DIR) and lines on stdout.
set -euo pipefail
ckpt=$(realpath "${1:?ckpt binary}")
CKPT_BENCH_DIR=${CKPT_BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench-validate}  # gpu_validate.sh's model, made once
source "$(dirname "$0")/lib.sh"
out=${OUT:-$bench_dir}
mkdir -p "$out"
model=$(synthetic llama8b --layers 32 --hidden 4096 --intermediate 14336 --heads 32 --kv-heads 8 --vocab 128256 \
  --dtype bf16 --max-shard-size 5GB)

name=ckpt-bench-$$
trap '"$ckpt" stage --drop $name -q 2>/dev/null || true' EXIT
staged=0
if "$ckpt" stage "$model" --shm $name -q 2>"$bench_dir/stage.err"; then staged=1; else echo "shm: not staged: $(cat "$bench_dir/stage.err")"; fi

python3 - "$ckpt" "$model" "$out" "${CKPT_BENCH_RUNS:-5}" "$name" "$staged" <<'PY'
import glob, json, os, statistics, subprocess, sys, time
ckpt, model, out, runs, name, staged = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1"

def load_of(report):
    r = json.load(open(report))
    d = [p for p in r["phases"] if p["phase"].startswith("load")][0]["details"]
    return {k: d.get(k) for k in ["io", "io_note", "gbps", "floor_gbps", "fraction_of_floor", "wall_seconds",
                                 "first_layer_seconds", "first_layer_bytes", "read_busy_seconds", "h2d_busy_seconds"]}

def start(args, tag):
    report = f"{out}/load-{tag}.json"
    return subprocess.Popen([ckpt, "validate", *args, "--report", report], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True), report

def run(args, tag):
    p, report = start(args, tag)
    _, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"validate {tag}: exit {p.returncode}\n{err}")
    return load_of(report)

def stats(rs):
    f = [r["fraction_of_floor"] for r in rs]
    return {"median_gbps": statistics.median(r["gbps"] for r in rs), "median_fraction": statistics.median(f),
            "min_fraction": min(f), "max_fraction": max(f),
            "median_first_layer_s": statistics.median(r["first_layer_seconds"] for r in rs),
            "median_load_s": statistics.median(r["wall_seconds"] for r in rs)}

summary = {"model": "Llama-3-8B shapes, bf16, 16.06 GB, page cache"}
for io in ["posix", "gds"]:
    rs = [run([model, "--io", io], f"{io}-{i}") for i in range(runs)]
    summary[io] = {"runs": rs, **stats(rs)}
    s = summary[io]
    print(f"--io {io} ({rs[0]['io']}): median {s['median_gbps']:.1f} GB/s = {100 * s['median_fraction']:.0f}% of the floor "
          f"(runs {100 * s['min_fraction']:.0f}-{100 * s['max_fraction']:.0f}%), layer 0 after {s['median_first_layer_s']:.3f} s "
          f"of {s['median_load_s']:.3f} s" + (f"; {rs[0]['io_note']}" if rs[0]["io_note"] else ""))
summary["auto"] = run([model, "--io", "auto"], "auto")
print(f"--io auto: {summary['auto']['io']}: {summary['auto']['io_note']}")

shards = sorted(glob.glob(f"{model}/*.safetensors"))
def drop_cache():
    for f in shards:
        subprocess.run(["dd", f"if={f}", "iflag=nocache", "count=0", "status=none"], check=True)
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *shards], capture_output=True, text=True)
    return sum(int(x) for x in r.stdout.split()) if r.returncode == 0 else None
def storage_read():
    drop_cache()
    t = time.time()
    ps = [subprocess.Popen(["dd", f"if={f}", "of=/dev/null", "bs=16M", "status=none"]) for f in shards]
    if any(p.wait() for p in ps):
        sys.exit("dd of the shards failed")
    return sum(os.path.getsize(f) for f in shards) / (time.time() - t) / 1e9
cold = []
for i in range(min(runs, 3)):
    resident = drop_cache()
    r = run([model, "--io", "posix"], f"cold-{i}")
    r["resident_bytes_before"] = resident
    r["storage_gbps"] = storage_read()
    cold.append(r)
summary["cold"] = cold
print("cold cache (--io posix): " + "; ".join(
    f"{r['gbps']:.2f} GB/s vs dd {r['storage_gbps']:.2f} GB/s = {100 * r['gbps'] / r['storage_gbps']:.0f}% of the storage"
    f" ({r['resident_bytes_before'] if r['resident_bytes_before'] is not None else '?'} bytes resident before)"
    for r in cold))
subprocess.run(["cat", *shards], stdout=subprocess.DEVNULL, check=True)  # warm again for /dev/shm below
if staged:
    one = run(["--from-shm", name], "shm-1")
    # One process per GPU where there are several. On one GPU the four share its memory: 4 x 16 GB
    # of weights fit 80 GB only with the smallest warm-up (batch 1: one KV cache and workspace).
    gpus = max(1, subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.count("GPU "))
    small = ["--batch-sizes", "1"] if gpus < 4 else []
    procs = [start(["--from-shm", name, "--gpus", str(i % gpus), *small], f"shm-4-{i}") for i in range(4)]
    for p, _ in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"validate --from-shm (4 at once): exit {p.returncode}\n{err}")
    four = [load_of(r) for _, r in procs]
    total = sum(r["gbps"] * r["wall_seconds"] for r in four)  # bytes / 1e9
    aggregate = total / max(r["wall_seconds"] for r in four)
    summary["shm"] = {"one": one, "four": four, "aggregate_gbps_of_four": aggregate}
    print(f"/dev/shm: one process {one['gbps']:.1f} GB/s ({100 * one['fraction_of_floor']:.0f}% of the floor); 4 at once: "
          + ", ".join(f"{r['gbps']:.1f}" for r in four) + f" GB/s per process, {aggregate:.1f} GB/s aggregate "
          "(the load windows overlap; each GPU process copies over the same PCIe link)")
json.dump(summary, open(f"{out}/bench-load-io.json", "w"), indent=1)
PY
