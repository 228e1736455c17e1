#!/usr/bin/env bash
# Every bad input to ckpt convert: a non-zero exit, exactly one error line naming the rule, and no
# destination left behind. Hostile pickles must not run (their payload would create a file).
set -euo pipefail
ckpt=$1 data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f /tmp/ckpt_pwned

# expect CODE PATTERN ARGS...: runs ckpt convert ARGS... $tmp/out
expect() {
  local code=$1 pattern=$2; shift 2
  set +e
  "$ckpt" convert "$@" "$tmp/out" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  set -e
  local lines; lines=$(wc -l <"$tmp/stderr")
  if [ "$rc" != "$code" ] || [ "$lines" != 1 ] || ! grep -q -- "$pattern" "$tmp/stderr" || [ -e "$tmp/out" ]; then
    echo "FAIL: convert $*: exit $rc (want $code), $lines stderr lines, want /$pattern/:"; cat "$tmp/stderr"
    ls "$tmp"; exit 1
  fi
}

# Build broken variants of edge.bin with Python's zipfile (stored records, like torch).
python3 - "$data/edge/edge.bin" "$tmp" <<'PY'
import pickle, struct, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(src)
names = z.namelist()
def rewrite(path, skip=(), add=(), compress=(), replace=None):
    with zipfile.ZipFile(path, "w") as w:
        for n in names:
            if n in skip: continue
            data = replace.get(n, z.read(n)) if replace else z.read(n)
            w.writestr(zipfile.ZipInfo(n), data, zipfile.ZIP_DEFLATED if n in compress else zipfile.ZIP_STORED)
        for n, d in add:
            w.writestr(n, d)
rewrite(f"{out}/missing.bin", skip={"edge/data/0"})
rewrite(f"{out}/deflated.bin", compress={"edge/data/1"})
rewrite(f"{out}/script.pt", add=[("edge/constants.pkl", b"\x80\x02).")])
rewrite(f"{out}/notdict.bin", replace={"edge/data.pkl": pickle.dumps({"epoch": 3, "lr": 0.1}, protocol=2)})
rewrite(f"{out}/proto4.bin", replace={"edge/data.pkl": pickle.dumps({"a": 1}, protocol=4)})
# A flipped byte inside a storage record: only the CRC can tell.
raw = bytearray(open(src, "rb").read())
info = z.getinfo("edge/data/0")
name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
at = info.header_offset + 30 + name_len + extra_len
raw[at] ^= 0xFF
open(f"{out}/crc.bin", "wb").write(raw)
open(f"{out}/truncated.bin", "wb").write(bytes(raw[: len(raw) - 40]))
leg = open(src.replace("edge.bin", "edge_legacy.bin"), "rb").read()
open(f"{out}/legacy_truncated.bin", "wb").write(leg[:-5])
open(f"{out}/lfs.bin", "w").write("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n")
PY

expect 1 "global 'posix.system' is not allowed" "$data/malicious/malicious.bin"
expect 1 "global 'posix.system' is not allowed" "$data/malicious/malicious_legacy.bin"
[ ! -e /tmp/ckpt_pwned ] || { echo "FAIL: a malicious pickle ran"; exit 1; }
expect 1 "record 'edge/data/0' for storage '0' is missing" "$tmp/missing.bin"
expect 1 "is compressed (method 8, deflate)" "$tmp/deflated.bin"
expect 1 "TorchScript archive" "$tmp/script.pt"
expect 1 "value is a int, not a tensor; this is not a plain state dict" "$tmp/notdict.bin"
expect 1 "pickle protocol 4" "$tmp/proto4.bin"
expect 1 "does not match its CRC-32" "$tmp/crc.bin"
"$ckpt" convert -q --no-verify "$tmp/crc.bin" "$tmp/crc_out"  # the check is what --no-verify skips
expect 1 "end-of-central-directory" "$tmp/truncated.bin"
expect 1 "truncated" "$tmp/legacy_truncated.bin"
expect 1 "git-lfs pointer" "$tmp/lfs.bin"
expect 1 "no such top-level key" --key model "$data/edge/edge.bin"
expect 1 "no such file or directory" "$tmp/nothing.bin"
expect 2 "max-shard-size" --max-shard-size 5XB "$data/edge/edge.bin"
mkdir "$tmp/out"; touch "$tmp/out/keep"
set +e; "$ckpt" convert -q "$data/edge/edge.bin" "$tmp/out" 2>"$tmp/stderr"; rc=$?; set -e
[ "$rc" = 1 ] && [ -f "$tmp/out/keep" ] && [ "$(wc -l <"$tmp/stderr")" = 1 ] || { echo "FAIL: existing DST"; cat "$tmp/stderr"; exit 1; }
echo "test_convert_errors: ok"
