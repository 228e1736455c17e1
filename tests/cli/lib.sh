# Shared by the CLI tests: `source lib.sh` after setting ckpt and td from the arguments.
set -uo pipefail
ckpt=${1:?usage: test.sh path/to/ckpt testdata_dir}
td=${2:?usage: test.sh path/to/ckpt testdata_dir}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-cli-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# expect_error CODE PATTERN CMD...: the command exits with CODE, prints exactly one line on
# stderr containing PATTERN, and nothing on stdout.
expect_error() {
  local want=$1 pattern=$2
  shift 2
  local out err code
  out=$("$@" 2>"$scratch/.err")
  code=$?
  err=$(cat "$scratch/.err")
  if [ "$code" != "$want" ]; then fail "$* -> exit $code, want $want ($err)"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" != 1 ]; then fail "$* -> stderr is not one line: $err"; return; fi
  if ! grep -q -- "$pattern" <<<"$err"; then fail "$* -> '$err' lacks '$pattern'"; return; fi
  pass "$* -> $err"
}

# make_sparse_model MIB DIR [manifest]: DIR/model.safetensors with one BF16 tensor of MIB MiB, all
# zeros and written sparse (no disk used), and an empty config.json; with "manifest", a
# ckpt-manifest.json whose digests cannot match, so that validate hashes every byte.
make_sparse_model() {
  python3 - "$@" <<'PY'
import json, os, struct, sys
mib, path = int(sys.argv[1]), sys.argv[2]
os.makedirs(path, exist_ok=True)
n = mib << 20
head = json.dumps({"w": {"dtype": "BF16", "shape": [n // 2], "data_offsets": [0, n]}}).encode()
head += b" " * (-len(head) % 8)
with open(os.path.join(path, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head)
    f.truncate(8 + len(head) + n)
with open(os.path.join(path, "config.json"), "w") as f:
    f.write("{}")
if sys.argv[3:] == ["manifest"]:
    size = os.path.getsize(os.path.join(path, "model.safetensors"))
    json.dump({"files": {"model.safetensors": {"size": size, "header_digest": "0" * 16, "tensors": {"w": "0" * 16}}}},
              open(os.path.join(path, "ckpt-manifest.json"), "w"))
PY
}

finish() {
  if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
  echo "all passed"
}
