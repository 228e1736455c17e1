#!/usr/bin/env bash
# ckpt pack / unpack (issue 21), side by side in one run:
#  1. ratio on the trained bf16 model (testdata/llama-trained/model.safetensors) against the
#     order-0 bound of the same bytes (ckpt_bench_pack bound) and `zstd -3` / `zstd -19`;
#  2. the FP8 output of that model (ckpt quantize --fp8), packed and zstd -3;
#  3. on a synthetic >= 2 GB bf16 checkpoint: pack and unpack against cp of the same bytes (median
#     of RUNS alternating runs, peak RSS; both with --no-sync, as cp does not fsync either; then
#     the same followed by sync, ckpt with its default fsync), and single-thread decode into memory against
#     `zstd -d -T1` of a zstd -3 file of the same bytes. Synthetic weights are random bf16
#     values of std ~0.02: their exponents are more concentrated and their mantissas more random
#     than a trained model's, so the ratio there is not a real model's (use 1. for ratios).
# Usage: bench_pack.sh path/to/ckpt [runs] [layers]
set -euo pipefail
ckpt=$1
runs=${2:-3}
layers=${3:-22}
source "$(dirname "$0")/lib.sh"
bench_bin=${CKPT_BENCH_PACK:-$bench_root/build/tests/ckpt_bench_pack}
td=$bench_root/testdata
w=$bench_dir/pack
rm -rf "$w"; mkdir -p "$w"

ratio_row() {  # label original_file packed_container
  local label=$1 orig=$2 dir=$3
  local o p z3 z19 bound
  o=$(stat -c %s "$orig"); p=$(stat -c %s "$dir/checkpoint.ckptpack")
  z3=$(zstd -3 -q -c "$orig" | wc -c); z19=$(zstd -19 -q -c "$orig" | wc -c)
  bound=$("$bench_bin" bound "$(dirname "$orig")" | awk '/^bound_bytes/ {print $2}')
  printf '%-16s %12s %12s %7.4f %12s %7.4f %12s %7.4f %12s %7.4f %9.2f%%\n' "$label" "$o" "$p" \
    "$(awk -v a="$o" -v b="$p" 'BEGIN{print a/b}')" "$z3" "$(awk -v a="$o" -v b="$z3" 'BEGIN{print a/b}')" \
    "$z19" "$(awk -v a="$o" -v b="$z19" 'BEGIN{print a/b}')" "$bound" "$(awk -v a="$o" -v b="$bound" 'BEGIN{print a/b}')" \
    "$(awk -v p="$p" -v b="$bound" 'BEGIN{print 100*b/p}')"
}

echo "== ratio (original/packed; of_bound = bound bytes / packed bytes)"
printf '%-16s %12s %12s %7s %12s %7s %12s %7s %12s %7s %10s\n' file bytes ckpt_pack ratio zstd-3 ratio zstd-19 ratio \
  order0_bound ratio of_bound
mkdir -p "$w/trained"; cp "$td/llama-trained/model.safetensors" "$td/llama-trained/config.json" "$w/trained/"
"$ckpt" pack "$w/trained" "$w/trained.pack" -q
ratio_row "trained bf16" "$w/trained/model.safetensors" "$w/trained.pack"
"$ckpt" quantize "$td/llama-trained" "$w/fp8full" --fp8 -q
mkdir -p "$w/fp8"; cp "$w/fp8full/model.safetensors" "$w/fp8full/config.json" "$w/fp8/"
"$ckpt" pack "$w/fp8" "$w/fp8.pack" -q
ratio_row "trained fp8" "$w/fp8/model.safetensors" "$w/fp8.pack"
"$ckpt" inspect "$w/fp8.pack" | sed -n '/packed, by dtype/,$p'

echo "== speed on a synthetic ${layers}-layer bf16 checkpoint (random weights: not a real model's ratio)"
src=$(synthetic "llama-$layers" --layers "$layers")
bytes=$(stat -c %s "$src/model.safetensors")
against_cp "$src/model.safetensors" "$runs" "$w/syn.pack" "$ckpt" pack "$src" "$w/syn.pack" -q --no-sync
pack_med=$cmd_med pack_rss=$cmd_rss cp1=$cp_med pack_runs=$cmd_runs cp1_runs=$cp_runs
"$ckpt" pack "$src" "$w/syn.pack" -q
packed=$(stat -c %s "$w/syn.pack/checkpoint.ckptpack")
against_cp "$src/model.safetensors" "$runs" "$w/syn.out" "$ckpt" unpack "$w/syn.pack" "$w/syn.out" -q --no-sync
unpack_med=$cmd_med unpack_rss=$cmd_rss cp2=$cp_med unpack_runs=$cmd_runs cp2_runs=$cp_runs
printf '%-8s %12s %12s %8s %8s %8s %10s %8s\n' step bytes packed cp_s ckpt_s ratio ckpt_rss_MB cp_rss_MB
printf '%-8s %12s %12s %8s %8s %8.3f %10s %8s\n' pack "$bytes" "$packed" "$cp1" "$pack_med" \
  "$(awk -v a="$pack_med" -v b="$cp1" 'BEGIN{print a/b}')" "$pack_rss" "$cp_rss"
printf '%-8s %12s %12s %8s %8s %8.3f %10s %8s\n' unpack "$bytes" "$packed" "$cp2" "$unpack_med" \
  "$(awk -v a="$unpack_med" -v b="$cp2" 'BEGIN{print a/b}')" "$unpack_rss" "$cp_rss"
echo "pack runs: $pack_runs (cp: $cp1_runs); unpack runs: $unpack_runs (cp: $cp2_runs)"

echo "== to the disk: cp + sync against ckpt with its default fsync (median of $runs)"
cps=() packs=() unpacks=()
for ((i = 0; i < runs; i++)); do
  rm -rf "$bench_dir/cp-out" "$w/d.pack" "$w/d.out"; sync
  durable cp "$src/model.safetensors" "$bench_dir/cp-out"; cps+=("$secs"); rm -f "$bench_dir/cp-out"; sync
  durable "$ckpt" pack "$src" "$w/d.pack" -q; packs+=("$secs"); rm -rf "$w/d.pack"; sync
  durable "$ckpt" unpack "$w/syn.pack" "$w/d.out" -q; unpacks+=("$secs"); rm -rf "$w/d.out"
done
printf 'cp+sync %s s, pack %s s (%.3fx), unpack %s s (%.3fx); runs: cp %s / pack %s / unpack %s\n' \
  "$(median "${cps[@]}")" "$(median "${packs[@]}")" "$(awk -v a="$(median "${packs[@]}")" -v b="$(median "${cps[@]}")" 'BEGIN{print a/b}')" \
  "$(median "${unpacks[@]}")" "$(awk -v a="$(median "${unpacks[@]}")" -v b="$(median "${cps[@]}")" 'BEGIN{print a/b}')" \
  "${cps[*]}" "${packs[*]}" "${unpacks[*]}"

echo "== single-thread decode into memory"
zstd -3 -q -T1 -c "$src/model.safetensors" >"$w/syn.zst"
zs=$(date +%s.%N); zstd -d -q -T1 -c "$w/syn.zst" >/dev/null; ze=$(date +%s.%N)
"$bench_bin" decode "$w/syn.pack" | tee "$w/decode.txt"
printf 'zstd -d -T1: %.3f s, %.3f GB/s of %s bytes\n' "$(awk -v a="$zs" -v b="$ze" 'BEGIN{print b-a}')" \
  "$(awk -v a="$zs" -v b="$ze" -v n="$bytes" 'BEGIN{print n/(b-a)/1e9}')" "$bytes"
rm -rf "$w"
