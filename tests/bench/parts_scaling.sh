#!/usr/bin/env bash
# --part i/n as n concurrent processes on one machine against one process with every core
# (issue 19), for n = 1, 2, 4, 8: wall time of the parts, of finalize, and their sum over the one
# process's time; every output compared with the one process's bytes. Meant for the 16-core GPU
# machine (not part of `make bench`: on 2 cores it says little).
# Usage: parts_scaling.sh path/to/ckpt [runs=3] [layers=44]   (44 layers: a 4.4 GB bf16 source)
set -euo pipefail
ckpt=$1
runs=${2:-3}
layers=${3:-44}
source "$(dirname "$0")/lib.sh"
cores=$(nproc)
src=$(synthetic "llama-$layers" --layers "$layers")
bytes=$(stat -c %s "$src/model.safetensors")
out="$bench_dir/parts-out"
echo "source: $bytes bytes, $cores cores, median of $runs runs"
printf '%-40s %3s %9s %10s %9s %8s %8s\n' command n parts_s finalize_s total_s vs_one same

# parts N ARGS...: the n parts as concurrent processes (cores/n threads each), then finalize;
# sets parts_secs and fin_secs.
parts() {
  local n=$1 i start mid end
  shift
  local pids=()
  start=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    "$ckpt" "$@" --threads $((cores / n > 0 ? cores / n : 1)) --part "$i/$n" -q &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  mid=$(date +%s.%N)
  "$ckpt" finalize "$out" --threads "$cores" -q
  end=$(date +%s.%N)
  parts_secs=$(awk -v a="$start" -v b="$mid" 'BEGIN{printf "%.3f", b - a}')
  fin_secs=$(awk -v a="$mid" -v b="$end" 'BEGIN{printf "%.3f", b - a}')
}

sums() { (cd "$1" && find . -name '*.safetensors' -exec md5sum {} + | sort -k2); }

for cmd in "cast --dtype f16 --max-shard-size 500MB" "shard --tp 8" "rechunk --max-shard-size 500MB"; do
  read -r -a words <<<"$cmd"
  sub=${words[0]}
  opts=("${words[@]:1}")
  ones=()
  for ((r = 0; r < runs; r++)); do
    rm -rf "$out"; settle
    timed "$ckpt" "$sub" "$src" "$out" "${opts[@]}" --threads "$cores" -q
    ones+=("$secs")
  done
  one=$(median "${ones[@]}")
  ref=$(sums "$out")
  printf '%-40s %3s %9s %10s %9s %8s %8s\n' "$cmd" 1p "$one" - "$one" 1.000 ref
  for n in 1 2 4 8; do
    ps=() fs=() ts=()
    same=yes
    for ((r = 0; r < runs; r++)); do
      rm -rf "$out" "$out.ckpt-parts"; settle
      parts "$n" "$sub" "$src" "$out" "${opts[@]}"
      ps+=("$parts_secs"); fs+=("$fin_secs"); ts+=("$(awk -v a="$parts_secs" -v b="$fin_secs" 'BEGIN{print a + b}')")
      [ "$(sums "$out")" = "$ref" ] || same=NO
    done
    t=$(median "${ts[@]}")
    printf '%-40s %3s %9s %10s %9s %8.3f %8s\n' "$cmd" "$n" "$(median "${ps[@]}")" "$(median "${fs[@]}")" "$t" \
      "$(awk -v a="$t" -v b="$one" 'BEGIN{print a / b}')" "$same"
  done
  rm -rf "$out"
done
