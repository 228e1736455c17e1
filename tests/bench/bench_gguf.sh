#!/usr/bin/env bash
# ckpt gguf vs cp of the same bytes (issue 18): a synthetic Llama-shaped bf16 checkpoint of
# >= 2 GB (32000-token vocabulary, given testdata/llama-trained's Llama-2 tokenizer.json) through
# `ckpt gguf` for --type f16, q8_0 and q4_k, median of alternating runs, peak RSS; then the
# single-core encode speed of every ggml type beside llama.cpp's own reference quantizers
# (node-llama-cpp's libggml-base.so, what llama-quantize runs without an importance matrix).
# Targets: f16 <= 1.1x cp, q8_0 <= 1.3x cp (durable against cp + sync, --no-sync against cp), peak
# RSS <= 512 MB; exits 1 if missed. Prints the load average: the 2-core machine is often shared.
# Usage: bench_gguf.sh path/to/ckpt [runs]   (CKPT_GGUF_TYPES="f16 q8_0" to time only some types)
set -euo pipefail
ckpt=$1
runs=${2:-3}
source "$(dirname "$0")/lib.sh"
bench_bin=${CKPT_BENCH_GGUF:-$bench_root/build/tests/ckpt_bench_gguf}
libggml=${CKPT_NPM_DIR:-$bench_root/.deps/npm}/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so

src=$(synthetic "llama-22" --layers 22)
cp "$bench_root/testdata/llama-trained/tokenizer.json" "$bench_root/testdata/llama-trained/tokenizer_config.json" "$src/"
bytes=$(stat -c %s "$src/model.safetensors")
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# Two fair comparisons per type: the durable run (ckpt fsyncs before its rename; a sync after it
# is timed in) against cp + sync, and `--no-sync` against plain cp (both leave the bytes in the
# page cache). The targets must hold for both.
printf '%-6s %12s %8s %9s %8s %12s %8s %10s %8s %8s\n' type bytes cp_s nosync_s ratio cp+sync_s gguf_s gguf+sync ratio rss_MB
ok=1
for type in ${CKPT_GGUF_TYPES:-f16 q8_0 q4_k}; do
  against_cp_nosync=1 against_cp "$src/model.safetensors" "$runs" "$bench_dir/out.gguf" "$ckpt" gguf "$src" "$bench_dir/out.gguf" --type "$type" -f -q
  ratio=$(awk -v a="$nosync_med" -v b="$cp_med" 'BEGIN{printf "%.3f", a/b}')
  dratio=$(awk -v a="$cmdsync_med" -v b="$cpsync_med" 'BEGIN{printf "%.3f", a/b}')
  printf '%-6s %12s %8s %9s %8s %12s %8s %10s %8s %8s\n' "$type" "$bytes" "$cp_med" "$nosync_med" "$ratio" "$cpsync_med" "$cmd_med" \
    "$cmdsync_med" "$dratio" "$cmd_rss"
  echo "  runs: cp $cp_runs | gguf --no-sync $nosync_runs | cp+sync $cpsync_runs | gguf $cmd_runs | gguf+sync $cmdsync_runs"
  echo "  CPU s (user + sys): cp $cp_cpu_runs | gguf --no-sync $nosync_cpu_runs | gguf $cmd_cpu_runs"
  limit=$(case $type in f16) echo 1.1;; q8_0) echo 1.3;; *) echo 0;; esac)
  awk -v r="$ratio" -v d="$dratio" -v l="$limit" -v m="$cmd_rss" 'BEGIN{exit !((l == 0 || (r <= l && d <= l)) && m <= 512)}' || ok=0
done
rm -f "$bench_dir/out.gguf" "$bench_dir/out.gguf.ckpt-manifest.json"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -f "$libggml" ]; then "$bench_bin" "$libggml" 64; else echo "blocks: $libggml missing (tests/support/npm_fetch.sh)"; fi
[ "$ok" = 1 ] && echo "targets met (f16 <= 1.1x, q8_0 <= 1.3x cp, peak RSS <= 512 MB)" || { echo "TARGETS MISSED"; exit 1; }
