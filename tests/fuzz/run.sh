#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets (clang, ASan + UBSan, leak checking on) and runs each
# for FUZZ_SECONDS (default 300, so 10 minutes for both), seeded with the testdata files.
# Exits non-zero on the first crash, leak or sanitizer report; findings land in $FUZZ_DIR/crashes.
#   FUZZ_SECONDS=60 bash tests/fuzz/run.sh        # a shorter run
#   FUZZ_JOBS=1 FUZZ_DIR=build-fuzz ...           # defaults
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${FUZZ_SECONDS:-300}
out=${FUZZ_DIR:-$root/build-fuzz}
cxx=${CXX_FUZZ:-clang++}
mkdir -p "$out/crashes"

# The library sources these targets reach, nothing else (no CUDA, no executor).
common=(lib/core/error.cpp lib/core/dtype.cpp lib/core/file_io.cpp lib/formats/strict_json.cpp
        lib/formats/byte_source.cpp)
zip_sources=(lib/formats/crc32.cpp lib/formats/zip_reader.cpp)
pack_sources=(lib/core/hash.cpp lib/formats/pack_codec.cpp lib/formats/pack_format.cpp lib/formats/packed_source.cpp
              lib/formats/safetensors.cpp)
pickle_sources=(lib/formats/pickle/opcodes.cpp lib/formats/pickle/allowed_globals.cpp
                lib/formats/pickle/unpickler.cpp lib/formats/torch_state_dict.cpp lib/checkpoint/tensor_ref.cpp)
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -I"$root/lib" -Wno-unknown-pragmas)

build() {  # name sources...
  local name=$1; shift
  echo "fuzz: building $name"
  (cd "$root" && "$cxx" "${flags[@]}" "tests/fuzz/$name.cpp" "$@" -o "$out/$name")
}
build fuzz_zip_reader "${common[@]}" "${zip_sources[@]}"
build fuzz_unpickler "${common[@]}" "${pickle_sources[@]}"
build fuzz_pack_reader "${common[@]}" "${pack_sources[@]}" -lzstd

# Seeds: real torch zips for the zip reader; their data.pkl pickles and the legacy streams
# (several pickles back to back) for the unpickler.
mkdir -p "$out/seeds_zip" "$out/seeds_pickle" "$out/corpus_zip" "$out/corpus_pickle" "$out/seeds_pack" "$out/corpus_pack"
for f in "$root"/testdata/llama-bin/*.bin "$root"/testdata/llama-tied/*.bin "$root"/testdata/edge/edge.bin \
         "$root"/testdata/malicious/malicious.bin; do
  cp "$f" "$out/seeds_zip/$(basename "$(dirname "$f")")_$(basename "$f")"
done
python3 - "$root/testdata" "$out/seeds_pickle" <<'PY'
import sys, zipfile, pathlib
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for p in [src / "edge/edge.bin", src / "llama-bin/pytorch_model.bin", src / "malicious/malicious.bin"]:
    z = zipfile.ZipFile(p)
    name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
    (dst / (p.parent.name + "_data.pkl")).write_bytes(z.read(name))
for p in [src / "edge/edge_legacy.bin", src / "malicious/malicious_legacy.bin"]:
    (dst / p.name).write_bytes(p.read_bytes()[15:])  # after the magic: version, sys_info, object, keys
PY

# Seeds for the packed container: small checkpoints packed by the ckpt being tested.
ckpt_bin=${CKPT_BIN:-$root/build/ckpt}
for d in llama edge llama-tied; do
  rm -rf "$out/pack_tmp"
  "$ckpt_bin" pack "$root/testdata/$d" "$out/pack_tmp" -q
  cp "$out/pack_tmp/checkpoint.ckptpack" "$out/seeds_pack/$d.ckptpack"
done
rm -rf "$out/pack_tmp"

run() {  # name corpus seeds
  local name=$1 corpus=$2 seeds=$3
  echo "fuzz: running $name for ${seconds}s"
  local start=$SECONDS
  (cd "$out/crashes" && "$out/$name" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 \
      -timeout=10 -print_final_stats=1 "$corpus" "$seeds" 2>&1 | tail -n 25)
  local rc=${PIPESTATUS[0]}
  echo "fuzz: $name ran $((SECONDS - start))s, exit $rc"
  return "$rc"
}
run fuzz_zip_reader "$out/corpus_zip" "$out/seeds_zip"
run fuzz_unpickler "$out/corpus_pickle" "$out/seeds_pickle"
run fuzz_pack_reader "$out/corpus_pack" "$out/seeds_pack"
echo "fuzz: no crash, leak or sanitizer report"
