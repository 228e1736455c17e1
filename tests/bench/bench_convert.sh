#!/usr/bin/env bash
# ckpt convert vs cp on a Llama-shaped torch .bin (TinyLlama 1.1B shape, bf16, ~2.2 GB, written
# by tests/bench/torch_zip_writer.py without torch). Both read the same page-cached source and
# write a new file on the same file system; runs alternate, the median of RUNS is reported, with
# peak RSS from /usr/bin/time -v. A second, smaller model shows the RSS does not grow with size.
# Targets (issue 3): convert <= 1.1x cp, peak RSS <= 512 MB.
#   bash tests/bench/bench_convert.sh build/ckpt          # RUNS=5 BENCH_DIR=/tmp by default
set -euo pipefail
ckpt=$(realpath "${1:?usage: bench_convert.sh path/to/ckpt}")
here=$(cd "$(dirname "$0")" && pwd)
runs=${RUNS:-5}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/ckpt-bench-convert.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 "$here/torch_zip_writer.py" llama "$work/big.bin" --layers 22
python3 "$here/torch_zip_writer.py" llama "$work/small.bin" --layers 6
size=$(stat -c %s "$work/big.bin")
source "$here/lib.sh"
warm "$work/big.bin" "$work/small.bin"  # a clean page cache holding both sources for every run

# measure LABEL CMD...: appends "label seconds rss_kb" to $work/results
measure() {
  local label=$1; shift
  /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  echo "$label $wall $rss" >>"$work/results"
  rm -rf "$work/out" "$work/copy.bin"
  sync
}
: >"$work/results"
for ((i = 0; i < runs; i++)); do
  measure cp cp "$work/big.bin" "$work/copy.bin"
  measure convert "$ckpt" convert -q "$work/big.bin" "$work/out"
done
measure convert_small "$ckpt" convert -q "$work/small.bin" "$work/out"
measure convert_noverify "$ckpt" convert -q --no-verify "$work/big.bin" "$work/out"

python3 - "$work/results" "$size" "$(stat -c %s "$work/small.bin")" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size, small = int(sys.argv[2]), int(sys.argv[3])
def col(label, i): return [float(r[i]) for r in rows if r[0] == label]
cp, cv = statistics.median(col("cp", 1)), statistics.median(col("convert", 1))
rss = max(col("convert", 2)) / 1024
print(f"source: Llama-shaped torch zip, {size/1e9:.2f} GB bf16 ({len(col('cp', 1))} alternating runs each)")
print(f"{'':18}{'median s':>10}{'GB/s':>8}{'peak RSS MB':>13}")
print(f"{'cp':18}{cp:10.2f}{size/cp/1e9:8.2f}{max(col('cp', 2))/1024:13.0f}")
print(f"{'ckpt convert':18}{cv:10.2f}{size/cv/1e9:8.2f}{rss:13.0f}")
nv = col("convert_noverify", 1)[0]
print(f"{'  --no-verify':18}{nv:10.2f}{size/nv/1e9:8.2f}{col('convert_noverify', 2)[0]/1024:13.0f}")
print(f"{'  small model':18}{col('convert_small', 1)[0]:10.2f}{'':8}{col('convert_small', 2)[0]/1024:13.0f}  ({small/1e9:.2f} GB)")
print(f"all runs cp: {col('cp', 1)}  convert: {col('convert', 1)}")
ratio = cv / cp
print(f"convert/cp = {ratio:.2f} (target <= 1.10: {'met' if ratio <= 1.10 else 'MISSED'}); "
      f"peak RSS {rss:.0f} MB (target <= 512: {'met' if rss <= 512 else 'MISSED'})")
PY
