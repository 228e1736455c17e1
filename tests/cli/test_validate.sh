#!/usr/bin/env bash
# ckpt validate on real outputs of the other commands (rechunk, quantize --fp8 in every scale
# layout, shard --tp), then broken copies of them: each must exit 1 with a line naming the file,
# tensor or rank and the check. Without a GPU, a passing run exits 3 unless --cpu-only.
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
st_edit=$(dirname "$0")/../support/st_edit.py

# Exit code of `ckpt validate ARGS`, its stderr in $tmp/err.
rc_of() { set +e; "$ckpt" validate "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e; echo $rc; }
expect_fail() {  # DIR PATTERN...: exit 1 and a "check failed" line matching every pattern
  local dir=$1; shift
  local rc; rc=$(rc_of "$dir" --cpu-only)
  [ "$rc" = 1 ] || { cat "$tmp/out" "$tmp/err"; fail "$dir: exit $rc, want 1"; }
  local line; line=$(grep "check failed" "$tmp/err" || true)
  for p in "$@"; do grep -q -- "$p" <<<"$line" || { cat "$tmp/err"; fail "$dir: no failure line matching '$p'"; }; done
}

"$ckpt" rechunk "$td/llama" "$tmp/rc" -q
"$ckpt" quantize --fp8 "$td/llama" "$tmp/fp8t" -q
"$ckpt" quantize --fp8 --scheme block --block 32x32 "$td/llama" "$tmp/fp8b" -q
"$ckpt" quantize --fp8 --scheme channel "$td/qwen3" "$tmp/fp8c" -q
"$ckpt" shard --tp 2 "$td/llama" "$tmp/tp2" -q
"$ckpt" shard --tp 2 "$tmp/fp8c" "$tmp/tp2c" -q

# Good outputs pass.
for d in rc fp8t fp8b fp8c tp2 tp2c; do
  rc=$(rc_of "$tmp/$d" --cpu-only --report "$tmp/$d.json")
  [ "$rc" = 0 ] || { cat "$tmp/out" "$tmp/err"; fail "$d: --cpu-only exit $rc"; }
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['passed'] and r['phases'][0]['phase']=='structure'" "$tmp/$d.json"
done
grep -q "checksums (cpu)" "$tmp/out" || fail "no CPU checksum phase"
grep -q "gemm (cpu)" "$tmp/out" || fail "no CPU GEMM phase"

# Without --cpu-only: exit 3 and a clear message where there is no GPU.
rc=$(rc_of "$tmp/rc")
if nvidia-smi -L >/dev/null 2>&1; then
  [ "$rc" = 0 ] || fail "GPU machine: exit $rc"
else
  [ "$rc" = 3 ] || fail "no GPU: exit $rc, want 3"
  grep -q "no GPU: all CPU checks passed" "$tmp/err" || fail "no-GPU message missing"
fi

# A flipped byte inside a tensor.
cp -r "$tmp/fp8b" "$tmp/flip"
python3 "$st_edit" flip "$tmp/flip/model.safetensors" model.layers.1.mlp.up_proj.weight 100
expect_fail "$tmp/flip" "checksum:" "model.safetensors" "tensor 'model.layers.1.mlp.up_proj.weight'"

# A truncated file.
cp -r "$tmp/rc" "$tmp/trunc"
python3 -c "import os,sys; p=sys.argv[1]; os.truncate(p, os.path.getsize(p) - 4096)" "$tmp/trunc/model.safetensors"
expect_fail "$tmp/trunc" "structure:" "trunc/model.safetensors"

# A missing tensor / scale: the file rewritten without it (and without the manifest, so the
# structure rules, not the checksums, must catch it).
drop() {  # DIR TENSOR
  python3 "$st_edit" drop "$1/model.safetensors" "$2"
  rm -f "$1/ckpt-manifest.json"
}
cp -r "$tmp/fp8t" "$tmp/noscale"
drop "$tmp/noscale" model.layers.0.self_attn.k_proj.weight_scale
expect_fail "$tmp/noscale" "scale:" "tensor 'model.layers.0.self_attn.k_proj.weight'" "no scale tensor"
cp -r "$tmp/tp2" "$tmp/notensor"
drop "$tmp/notensor/rank-1" model.layers.1.mlp.gate_proj.weight
expect_fail "$tmp/notensor" "tp-agreement:" "model.layers.1.mlp.gate_proj.weight" "missing in rank-1"

# A missing rank, and a wrong tp size.
cp -r "$tmp/tp2" "$tmp/norank" && rm -rf "$tmp/norank/rank-1"
expect_fail "$tmp/norank" "tp-layout:" "norank/rank-1" "missing"
cp -r "$tmp/tp2c" "$tmp/tpsize"
python3 - "$tmp/tpsize/rank-1/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c['ckpt_parallel']['tp_size'] = 4
json.dump(c, open(p, 'w'), indent=2)
PY
expect_fail "$tmp/tpsize" "tp-layout:" "rank-1/config.json" "tp_size 4"

# Usage errors exit 2; a missing directory is a failed check.
[ "$(rc_of "$tmp/rc" --batch-sizes 0,2)" = 2 ] || fail "--batch-sizes 0 accepted"
[ "$(rc_of "$tmp/rc" --gpus x)" = 2 ] || fail "--gpus x accepted"
[ "$(rc_of "$tmp/nope" --cpu-only)" = 1 ] || fail "missing directory"
echo "validate CLI: ok"
