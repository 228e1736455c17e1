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

finish() {
  if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
  echo "all passed"
}
