#!/usr/bin/env bash
# ckpt run (one pass) against the same four commands in sequence and against cp of the source, on
# a ~2.2 GB bf16 Llama-shaped checkpoint (TinyLlama 1.1B shape, random finite values, written by
# ckpt_make_synthetic): rechunk 1GB -> cast f32 -> quantize --fp8 -> shard --tp 2. Runs alternate
# (cp, sequence, run), each from a settled page cache holding the source; medians and peak RSS
# (/usr/bin/time -v; for the sequence, the largest of its four commands). Issue 19's goal: run
# <= 1.2x cp. The outputs of run and of the sequence are compared byte for byte once.
#   bash tests/bench/bench_pipeline.sh build/ckpt [runs]      # CKPT_BENCH_DIR=/tmp/ckpt-bench
set -euo pipefail
ckpt=$(realpath "${1:?usage: bench_pipeline.sh path/to/ckpt [runs]}")
runs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
work=$(mktemp -d "$bench_dir/pipeline.XXXXXX")
trap 'rm -rf "$work"' EXIT

src=$(synthetic "llama-22" --layers 22)
cat >"$work/pipeline.json" <<'JSON'
{"steps": [{"rechunk": {"max-shard-size": "1GB"}}, {"cast": {"dtype": "f32"}}, {"quantize": {"fp8": true}}, {"shard": {"tp": 2}}]}
JSON
bytes=$(stat -c %s "$src/model.safetensors")

# The sequence's peak RSS: the largest of its commands'.
sequence_timed() {
  local start end peak=0 step
  start=$(date +%s.%N)
  for step in "rechunk $src $work/s1 --max-shard-size 1GB" "cast $work/s1 $work/s2 --dtype f32" "quantize $work/s2 $work/s3 --fp8" \
              "shard $work/s3 $work/seq --tp 2"; do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$ckpt" $step -q 2>"$work/.time" >/dev/null || { cat "$work/.time" >&2; return 1; }
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$work/.time")
    peak=$(max_of "$peak" "$rss")
  done
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", b - a}')
  rss_mb=$peak
}

cps=() seqs=() pipes=() cprss=() seqrss=() piperss=()
for ((i = 0; i < runs; i++)); do
  rm -rf "$work/cp-out" "$work/s1" "$work/s2" "$work/s3" "$work/seq" "$work/run"; settle
  timed cp "$src/model.safetensors" "$work/cp-out"; cps+=("$secs"); cprss+=("$rss_mb")
  rm -rf "$work/cp-out"; settle
  sequence_timed; seqs+=("$secs"); seqrss+=("$rss_mb")
  [ "$i" = 0 ] || rm -rf "$work/seq"
  rm -rf "$work/s1" "$work/s2" "$work/s3"; settle
  timed "$ckpt" run "$work/pipeline.json" "$src" "$work/run" -q; pipes+=("$secs"); piperss+=("$rss_mb")
  if [ "$i" = 0 ]; then
    diff -r -x ckpt-manifest.json "$work/seq" "$work/run" >/dev/null && echo "run = sequence, byte for byte" ||
      { echo "run differs from the sequence"; exit 1; }
    rm -rf "$work/seq"
  fi
done
cp_med=$(median "${cps[@]}"); seq_med=$(median "${seqs[@]}"); run_med=$(median "${pipes[@]}")
printf 'source: %s bytes (safetensors, bf16); %s runs each, alternating; load: %s\n' "$bytes" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %10s %8s %12s\n' what median_s vs_cp peak_rss_MB
printf '%-34s %10s %8s %12s\n' "cp of the source" "$cp_med" 1.00 "$(max_of "${cprss[@]}")"
printf '%-34s %10s %8s %12s\n' "4 commands in sequence" "$seq_med" "$(awk -v a="$seq_med" -v b="$cp_med" 'BEGIN{printf "%.2f", a/b}')" "$(max_of "${seqrss[@]}")"
printf '%-34s %10s %8s %12s\n' "ckpt run (one pass)" "$run_med" "$(awk -v a="$run_med" -v b="$cp_med" 'BEGIN{printf "%.2f", a/b}')" "$(max_of "${piperss[@]}")"
echo "runs: cp ${cps[*]} | sequence ${seqs[*]} | run ${pipes[*]}"
