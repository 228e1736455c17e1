#!/usr/bin/env bash
# Command-line conventions (issue 12): the overview, suggestions, -V, clean usage errors with the
# "ckpt: error: ... [code]" form, --json = JSON on stdout only, validate --report, --dry-run making
# the run's checks, options that cannot apply, "re:" patterns, sizes, and the generated man page
# and completions.
source "$(dirname "$0")/lib.sh"

# `ckpt` alone and `ckpt help`: the overview with every subcommand, exit 0.
for args in "" "help"; do
  out=$("$ckpt" $args) && grep -q "^  convert " <<<"$out" && grep -q "^  validate " <<<"$out" \
    && pass "ckpt $args: overview" || fail "ckpt $args: no overview"
done
"$ckpt" help shard | grep -c -- "--tp" >/dev/null && pass "help shard" || fail "help shard"
"$ckpt" -V | grep -c "^CUDA: " >/dev/null && "$ckpt" --version | grep -c "SIMD" >/dev/null && pass "-V" || fail "-V"

# Misspelt subcommand and option: the nearest named; range errors without 300-digit numbers.
expect_error 2 "no command 'conver' (did you mean convert?).*\[usage\]$" "$ckpt" conver a b
expect_error 2 "help: no command 'shrd' (did you mean shard?)" "$ckpt" help shrd
expect_error 2 "^ckpt: error: rechunk: unknown option --forse (did you mean --force?)" "$ckpt" rechunk "$td/llama" "$scratch/x" --forse
expect_error 2 "^ckpt: error: shard: --tp: must be an integer ≥ 1, not 0.*\[usage\]$" "$ckpt" shard "$td/llama" "$scratch/x" --tp 0
expect_error 2 "threads: must be an integer from 0 to 4096, not -1" "$ckpt" rechunk "$td/llama" "$scratch/x" --threads -1
expect_error 2 "^ckpt: error: rechunk: DST is required" "$ckpt" rechunk "$td/llama"
expect_error 2 "max-shard-size 'lots' is not a size.*\[usage\]$" "$ckpt" rechunk "$td/llama" "$scratch/x" --max-shard-size lots

# Short forms and sizes: -f, -T, -q; 5G = 5GB (one shard here), 20K splits.
"$ckpt" rechunk "$td/llama" "$scratch/s" -T 2 -q --max-shard-size 5G && "$ckpt" rechunk "$td/llama" "$scratch/s" -f -q \
  && [ -f "$scratch/s/model.safetensors" ] && pass "-f -T -q, 5G" || fail "-f -T -q, 5G"
"$ckpt" rechunk "$td/llama" "$scratch/k" -q --max-shard-size 20K && [ -f "$scratch/k/model.safetensors.index.json" ] \
  && pass "20K shards" || fail "20K shards"
"$ckpt" rechunk "$td/llama" "$scratch/v" -v 2>"$scratch/v.err"
grep -q "v/model.safetensors: 21 tensors" "$scratch/v.err" && pass "-v lists files" || fail "-v: $(cat "$scratch/v.err")"

# --dry-run makes the run's destination checks: same error and exit code as the real run.
mkdir "$scratch/exists"
expect_error 1 "destination_exists" "$ckpt" rechunk "$td/llama" "$scratch/exists" --dry-run
expect_error 1 "destination_exists" "$ckpt" rechunk "$td/llama" "$scratch/exists"
expect_error 1 "does not exist" "$ckpt" rechunk "$td/llama" "$scratch/no/such/dir" --dry-run
"$ckpt" rechunk "$td/llama" "$scratch/exists" --dry-run -f >/dev/null && pass "--dry-run -f on an existing DST" || fail "--dry-run -f"

# Options that cannot apply.
expect_error 2 "block 64x64 applies only to --scheme block" "$ckpt" quantize --fp8 --block 64x64 "$td/llama" "$scratch/q"
expect_error 2 "ep distributes MoE experts.*(dense)" "$ckpt" shard --tp 2 --ep "$td/llama" "$scratch/q"
expect_error 2 "ignore 'nomatch\*' matches no module or tensor" "$ckpt" quantize --fp8 --ignore 'nomatch*' "$td/llama" "$scratch/q"
expect_error 2 "not a regular expression" "$ckpt" quantize --fp8 --ignore 're:model.(' "$td/llama" "$scratch/q"
# llm-compressor's "re:" prefix: anchored at the start, as re.match.
"$ckpt" quantize --fp8 --ignore 're:model\.layers\.0\.mlp\.' "$td/llama" "$scratch/re" -q || fail "re: ignore"
python3 - "$scratch/re/config.json" <<'PY' && pass "re: --ignore leaves layer 0's MLP unquantized" || fail "re: --ignore"
import json, sys
ig = json.load(open(sys.argv[1]))["quantization_config"]["ignored_layers"]
assert "model.layers.0.mlp.up_proj" in ig and "model.layers.1.mlp.up_proj" not in ig, ig
PY
expect_error 2 "keep 're:layers' matches no tensor" "$ckpt" cast --dtype f16 --keep 're:layers' "$td/llama" "$scratch/c"

# --json: one JSON document on stdout, nothing else there; validate's report file is --report.
"$ckpt" rechunk "$td/llama" "$scratch/rc" -q
"$ckpt" validate "$scratch/rc" --cpu-only --json >"$scratch/v.json" 2>"$scratch/v.err" \
  && python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["passed"]' "$scratch/v.json" \
  && grep -q "structure" "$scratch/v.err" && pass "validate --json: JSON on stdout, table on stderr" || fail "validate --json"
"$ckpt" validate "$scratch/rc" --cpu-only --report "$scratch/r.json" >/dev/null \
  && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$scratch/r.json" && pass "--report FILE" || fail "--report"
mkdir -p "$scratch/rdir/keep"
expect_error 2 "rdir: exists and is not a regular file" "$ckpt" validate "$scratch/rc" --cpu-only --report "$scratch/rdir"
[ -d "$scratch/rdir/keep" ] && pass "a directory named like the report survives" || fail "report directory removed"
# validate's failure lines carry the prefix and the code.
cp -r "$scratch/rc" "$scratch/bad" && rm "$scratch/bad/model.safetensors"
"$ckpt" validate "$scratch/bad" --cpu-only >/dev/null 2>"$scratch/bad.err"
grep -q "^ckpt: error: check failed: .*\[check_failed\]$" "$scratch/bad.err" && pass "failure line form" \
  || fail "failure line: $(cat "$scratch/bad.err")"

# Man page and completions, generated from the CLI's definitions at build time.
share=$(dirname "$ckpt")/share
man_page="$share/man/man1/ckpt.1"
for c in inspect convert rechunk cast quantize shard merge validate forward perplexity; do
  grep -q "^.SS \"ckpt $c" "$man_page" || fail "man page lacks $c"
done
grep -q 'max\\-shard\\-size' "$man_page" && pass "man page" || fail "man page options"
if command -v groff >/dev/null; then
  groff -man -Tutf8 -ww "$man_page" 2>"$scratch/groff.err" >/dev/null && [ ! -s "$scratch/groff.err" ] \
    && pass "man page renders without warnings" || fail "groff: $(cat "$scratch/groff.err")"
fi
words=$(bash -c 'source "$1"; COMP_WORDS=(ckpt conv); COMP_CWORD=1; _ckpt; echo "${COMPREPLY[*]}"' _ "$share/bash-completion/completions/ckpt")
[ "$words" = convert ] && pass "bash completes conv -> convert" || fail "bash completion: '$words'"
words=$(bash -c 'source "$1"; COMP_WORDS=(ckpt shard --vo); COMP_CWORD=2; _ckpt; echo "${COMPREPLY[*]}"' _ "$share/bash-completion/completions/ckpt")
[ "$words" = --vocab-padding ] && pass "bash completes shard --vo -> --vocab-padding" || fail "bash completion: '$words'"
if command -v zsh >/dev/null; then
  zsh -n "$share/zsh/site-functions/_ckpt" && pass "zsh completion parses" || fail "zsh completion syntax"
fi
# --dtype auto: config.json's dtype (llama-f32 says float32, llama bfloat16).
"$ckpt" cast --dtype auto "$td/llama-f32" "$scratch/auto32" -q --json >"$scratch/auto.json" \
  && "$ckpt" cast --dtype bf16 "$td/llama-f32" "$scratch/bf" -q && "$ckpt" cast --dtype auto "$scratch/bf" "$scratch/auto" -q \
  && python3 - "$scratch/auto32/model.safetensors" "$scratch/auto/model.safetensors" <<'PY' && pass "--dtype auto" || fail "--dtype auto"
import json, struct, sys
def dtypes(p):
    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]
    return {v["dtype"] for k, v in json.loads(f.read(n)).items() if k != "__metadata__"}
assert dtypes(sys.argv[1]) == {"F32"}, dtypes(sys.argv[1])
assert dtypes(sys.argv[2]) == {"BF16"}, dtypes(sys.argv[2])
PY

# make install's rules: binary, man page and completions under PREFIX, staged under DESTDIR.
build=$(dirname "$ckpt")
if [ -f "$build/cmake_install.cmake" ]; then
  DESTDIR="$scratch/stage" cmake --install "$build" --prefix /opt/ckpt >/dev/null \
    && [ -x "$scratch/stage/opt/ckpt/bin/ckpt" ] && [ -f "$scratch/stage/opt/ckpt/share/man/man1/ckpt.1" ] \
    && [ -f "$scratch/stage/opt/ckpt/share/bash-completion/completions/ckpt" ] \
    && [ -f "$scratch/stage/opt/ckpt/share/zsh/site-functions/_ckpt" ] && pass "install (PREFIX, DESTDIR)" || fail "install"
fi
finish
