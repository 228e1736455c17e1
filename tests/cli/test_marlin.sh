#!/usr/bin/env bash
# ckpt marlin on real `ckpt quantize --int4` outputs of the trained testdata model in every
# format (GPTQ sym/asym, AWQ, compressed-tensors sym/asym; group 32 and channelwise): the
# relayout is named in config.json, refused by the commands that cannot read tiles (shard),
# --undo gives back every file bit for bit, and `quantize --layout marlin` gives the bytes of the
# two commands in one pass. Refusals: one line, exit 1 (usage errors: exit 2).
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

for case in "gptq --sym 32" "gptq --asym -1" "awq --asym 32" "compressed-tensors --sym -1" "compressed-tensors --asym 32"; do
  set -- $case
  n="$1$2$3"
  "$ckpt" quantize --int4 --format "$1" "$2" --group-size "$3" "$td/llama-trained" "$tmp/q-$n" -q
  "$ckpt" marlin "$tmp/q-$n" "$tmp/m-$n" -q
  grep -q '"quant_method": "ckpt_marlin"' "$tmp/m-$n/config.json" || fail "$n: config.json does not name the layout"
  [ ! -e "$tmp/m-$n/quantize_config.json" ] || fail "$n: quantize_config.json (plain GPTQ to old loaders) written"
  cmp -s "$tmp/q-$n/model.safetensors" "$tmp/m-$n/model.safetensors" && fail "$n: nothing relaid out"
  "$ckpt" marlin --undo "$tmp/m-$n" "$tmp/u-$n" -q
  for f in model.safetensors config.json quantize_config.json; do
    [ -e "$tmp/q-$n/$f" ] || continue
    cmp -s "$tmp/q-$n/$f" "$tmp/u-$n/$f" || fail "$n: --undo changed $f"
  done
  pass "$n: relayout and --undo bit for bit"
  # --layout marlin: quantize and relayout in one pass give the bytes of the two commands.
  "$ckpt" quantize --int4 --format "$1" "$2" --group-size "$3" --layout marlin "$td/llama-trained" "$tmp/l-$n" -q
  diff <(cd "$tmp/m-$n" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) \
       <(cd "$tmp/l-$n" && find . -type f ! -name ckpt-manifest.json -exec md5sum {} + | sort -k2) >/dev/null ||
    fail "$n: quantize --layout marlin differs from quantize then marlin"
  pass "$n: quantize --layout marlin = quantize, then marlin"
done

# Commands that would split or reinterpret the tiles refuse with the way out.
set +e
"$ckpt" shard --tp 2 "$tmp/m-gptq--sym32" "$tmp/tp2" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "ckpt marlin --undo" "$tmp/err" || { cat "$tmp/err"; fail "shard of a Marlin checkpoint: exit $rc"; }
pass "shard refuses a Marlin checkpoint"

# Refusals: not INT4; relayout twice; --undo of a plain INT4 checkpoint; nothing left behind.
for args in "$td/llama $tmp/x1" "$tmp/m-awq--asym32 $tmp/x2" "--undo $tmp/q-awq--asym32 $tmp/x3"; do
  set +e
  "$ckpt" marlin $args 2>"$tmp/err"; rc=$?
  set -e
  [ "$rc" = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "marlin $args: exit $rc"; }
done
for args in "--fp8 --layout marlin" "--int4 --layout tiles"; do
  set +e
  "$ckpt" quantize $args "$td/llama-trained" "$tmp/x4" 2>"$tmp/err"; rc=$?
  set -e
  [ "$rc" = 2 ] && grep -q -- "--layout" "$tmp/err" || { cat "$tmp/err"; fail "quantize $args: exit $rc"; }
done
[ ! -e "$tmp/x1" ] && [ ! -e "$tmp/x2" ] && [ ! -e "$tmp/x3" ] && [ ! -e "$tmp/x4" ] || fail "a refused run left output"
pass "refusals"
echo "all passed"
