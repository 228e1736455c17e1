#!/usr/bin/env bash
# ckpt run (one pass) against the same commands in sequence and against cp of the source, on a
# ~2.2 GB bf16 Llama-shaped checkpoint (TinyLlama 1.1B shape, random finite values, written by
# ckpt_make_synthetic; testdata/llama-trained's Llama-2 tokenizer beside it, for gguf). Pipelines,
# by name (default: fp8-tp2):
#   fp8-tp2    rechunk 1GB -> cast f32 -> quantize --fp8 -> shard --tp 2
#   gguf-f16   rechunk 1GB -> cast f16 -> gguf (auto: F16, norms F32), one file
#   gguf-q8_0  rechunk 1GB -> cast f16 -> gguf --type q8_0, one file
# Runs alternate (cp, sequence, run), each from a settled page cache holding the source; medians
# and peak RSS (/usr/bin/time -v; for the sequence, the largest of its commands). Issue 19's goal:
# run <= 1.2x cp. cp leaves its bytes in the page cache while ckpt syncs its output before the
# rename, so `run --no-sync` is timed too (the same work without the wait for the disk), and an
# fsync of the output after cp and after run (`sync FILE`, not other processes' dirty data): the
# durable run's fair floor is cp + sync. The outputs of run and of the sequence are compared byte for byte once.
#   bash tests/bench/bench_pipeline.sh build/ckpt [runs] [PIPELINE...]   # CKPT_BENCH_DIR=/tmp/ckpt-bench
set -euo pipefail
ckpt=$(realpath "${1:?usage: bench_pipeline.sh path/to/ckpt [runs] [PIPELINE...]}")
runs=${2:-5}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
work=$(mktemp -d "$bench_dir/pipeline.XXXXXX")
trap 'rm -rf "$work"' EXIT

declare -A pipelines=(
  [fp8-tp2]='{"steps": [{"rechunk": {"max-shard-size": "1GB"}}, {"cast": {"dtype": "f32"}}, {"quantize": {"fp8": true}}, {"shard": {"tp": 2}}]}'
  [gguf-f16]='{"steps": [{"rechunk": {"max-shard-size": "1GB"}}, {"cast": {"dtype": "f16"}}, {"gguf": {}}]}'
  [gguf-q8_0]='{"steps": [{"rechunk": {"max-shard-size": "1GB"}}, {"cast": {"dtype": "f16"}}, {"gguf": {"type": "q8_0"}}]}'
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(fp8-tp2)

src=$(synthetic "llama-22" --layers 22)
cp "$bench_root/testdata/llama-trained/tokenizer.json" "$bench_root/testdata/llama-trained/tokenizer_config.json" "$src/"
bytes=$(stat -c %s "$src/model.safetensors")
# Every output is named as the source (in its own directory), so gguf's general.name agrees.
out=$(basename "$src")

# sequence_timed PIPELINE: its commands one after another, step k writing $work/s<k>/$out; sets
# secs, rss_mb (the largest of its commands') and last (the final output).
sequence_timed() {
  local start end peak=0 prev=$src k=0
  local -a args
  start=$(date +%s.%N)
  while IFS=$'\t' read -r -a args; do
    k=$((k + 1))
    mkdir -p "$work/s$k"
    /usr/bin/time -v "$ckpt" "${args[0]}" "$prev" "$work/s$k/$out" "${args[@]:1}" -q 2>"$work/.time" >/dev/null ||
      { cat "$work/.time" >&2; return 1; }
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$work/.time")
    peak=$(max_of "$peak" "$rss")
    prev="$work/s$k/$out"
  done < <(python3 "$here/../support/pipeline_steps.py" "$1")
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", b - a}')
  rss_mb=$peak
  last=$prev
}

printf 'source: %s bytes (safetensors, bf16); %s runs each, alternating; load at start: %s\n' "$bytes" "$runs" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %10s %8s %12s\n' what median_s vs_cp peak_rss_MB
for name in "${names[@]}"; do
  [ -n "${pipelines[$name]:-}" ] || { echo "no pipeline '$name' (${!pipelines[*]})" >&2; exit 2; }
  echo "${pipelines[$name]}" >"$work/$name.json"
  nsteps=$(python3 "$here/../support/pipeline_steps.py" "$work/$name.json" | wc -l)
  cps=() seqs=() pipes=() nosyncs=() cprss=() seqrss=() piperss=() cpss=() pipess=() cpc=() pipec=() nosyncc=()
  for ((i = 0; i < runs; i++)); do
    rm -rf "$work/cp-out" "$work"/s[0-9]* "$work/run"; settle
    timed cp "$src/model.safetensors" "$work/cp-out"; cps+=("$secs"); cprss+=("$rss_mb"); cpc+=("$cpu_s")
    fsync_timed "$work/cp-out"; cpss+=("$(awk -v a="${cps[-1]}" -v b="$secs" 'BEGIN{printf "%.3f", a + b}')")
    rm -rf "$work/cp-out"; settle
    sequence_timed "$work/$name.json"; seqs+=("$secs"); seqrss+=("$rss_mb")
    if [ "$i" = 0 ]; then mv "$work/s$nsteps" "$work/seq"; last="$work/seq/$out"; fi
    rm -rf "$work"/s[0-9]*; settle
    mkdir -p "$work/run"
    timed "$ckpt" run "$work/$name.json" "$src" "$work/run/$out" -q; pipes+=("$secs"); piperss+=("$rss_mb"); pipec+=("$cpu_s")
    fsync_timed "$work/run/$out"; pipess+=("$(awk -v a="${pipes[-1]}" -v b="$secs" 'BEGIN{printf "%.3f", a + b}')")
    rm -rf "$work/nosync"; mkdir -p "$work/nosync"; settle
    timed "$ckpt" run "$work/$name.json" "$src" "$work/nosync/$out" -q --no-sync; nosyncs+=("$secs"); nosyncc+=("$cpu_s")
    rm -rf "$work/nosync"
    if [ "$i" = 0 ]; then
      if [ -f "$last" ]; then cmp -s "$last" "$work/run/$out"; else diff -r -x ckpt-manifest.json "$last" "$work/run/$out" >/dev/null; fi &&
        echo "$name: run = sequence, byte for byte" || { echo "$name: run differs from the sequence"; exit 1; }
      rm -rf "$work/seq"
    fi
  done
  cp_med=$(median "${cps[@]}"); seq_med=$(median "${seqs[@]}"); run_med=$(median "${pipes[@]}")
  nosync_med=$(median "${nosyncs[@]}"); cpsync_med=$(median "${cpss[@]}"); runsync_med=$(median "${pipess[@]}")
  printf '%-44s %10s %8s %12s\n' "$name: cp of the source" "$cp_med" 1.00 "$(max_of "${cprss[@]}")"
  printf '%-44s %10s %8s %12s\n' "$name: $nsteps commands in sequence" "$seq_med" \
    "$(awk -v a="$seq_med" -v b="$cp_med" 'BEGIN{printf "%.2f", a/b}')" "$(max_of "${seqrss[@]}")"
  printf '%-44s %10s %8s %12s\n' "$name: ckpt run (one pass)" "$run_med" \
    "$(awk -v a="$run_med" -v b="$cp_med" 'BEGIN{printf "%.2f", a/b}')" "$(max_of "${piperss[@]}")"
  printf '%-44s %10s %8s %12s\n' "$name: ckpt run --no-sync" "$nosync_med" \
    "$(awk -v a="$nosync_med" -v b="$cp_med" 'BEGIN{printf "%.2f", a/b}')" ""
  printf '%-44s %10s %8s %12s\n' "$name: cp + sync" "$cpsync_med" \
    "$(awk -v a="$cpsync_med" -v b="$cp_med" 'BEGIN{printf "%.2f", a/b}')" ""
  printf '%-44s %10s %8s %12s\n' "$name: ckpt run + sync (vs cp + sync)" "$runsync_med" \
    "$(awk -v a="$runsync_med" -v b="$cpsync_med" 'BEGIN{printf "%.2f", a/b}')" ""
  echo "  runs: cp ${cps[*]} | sequence ${seqs[*]} | run ${pipes[*]} | run --no-sync ${nosyncs[*]} | cp + sync ${cpss[*]} | run + sync ${pipess[*]}"
  echo "  CPU s (user + sys): cp ${cpc[*]} | run ${pipec[*]} | run --no-sync ${nosyncc[*]}"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
