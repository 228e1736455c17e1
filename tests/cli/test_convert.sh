#!/usr/bin/env bash
# ckpt convert on every testdata PyTorch checkpoint: the outputs hold exactly the tensors (names,
# dtypes, shapes, bytes) of the safetensors files torch/transformers wrote for the same weights.
set -euo pipefail
ckpt=$1 data=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
same() { python3 "$here/st_tensors.py" equal "$1" "$2" >"$tmp/cmp.txt" || { cat "$tmp/cmp.txt"; echo "FAIL: $1 vs $2"; exit 1; }; }

"$ckpt" convert -q "$data/llama-bin" "$tmp/single"
same "$tmp/single/model.safetensors" "$data/llama/model.safetensors"
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
  cmp "$tmp/single/$f" "$data/llama-bin/$f"
done
[ ! -e "$tmp/single/pytorch_model.bin.index.json" ]

# The .bin file itself, named inside its model directory: config.json and the side files beside it
# travel as they do when the directory is named (issue 12), and the tensors are the same.
"$ckpt" convert -q "$data/llama-bin/pytorch_model.bin" "$tmp/file"
same "$tmp/file/model.safetensors" "$data/llama/model.safetensors"
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
  cmp "$tmp/file/$f" "$data/llama-bin/$f" || { echo "FAIL: convert of the .bin file did not carry $f"; exit 1; }
done
# A weight file with no config.json beside it is not a model directory: nothing else is taken.
"$ckpt" convert -q "$data/edge/edge.bin" "$tmp/lone"
[ "$(ls "$tmp/lone" | sort | tr '\n' ' ')" = "ckpt-manifest.json model.safetensors " ] ||
  { echo "FAIL: a lone .bin picked up side files: $(ls "$tmp/lone")"; exit 1; }

"$ckpt" convert -q "$data/llama-bin-sharded" "$tmp/sharded" --max-shard-size 70KB
[ -f "$tmp/sharded/model.safetensors.index.json" ]
same "$tmp/sharded" "$data/llama/model.safetensors"

# llama-tied holds pytorch_model.bin and model.safetensors: convert reads the .bin. Its tied
# lm_head.weight is dropped (tie_word_embeddings: true), as transformers' save_pretrained did.
"$ckpt" convert "$data/llama-tied" "$tmp/tied" 2>"$tmp/err.txt"
grep -q "dropped 'lm_head.weight': the same memory as 'model.embed_tokens.weight'" "$tmp/err.txt"
"$ckpt" convert --dry-run "$data/llama-tied" "$tmp/dry" | grep -c '"source_format": "torch-zip"' >/dev/null
same "$tmp/tied" "$data/llama-tied/model.safetensors"
[ "$(python3 "$here/st_tensors.py" metadata "$tmp/tied/model.safetensors")" = \
  '{"format": "pt", "lm_head.weight": "model.embed_tokens.weight"}' ]

# Edge cases, zip and legacy: torch's contiguous() bytes; the tied pair is written once and the
# dropped name recorded as {dropped: kept}, or every name with --keep-aliases.
for f in edge.bin edge_legacy.bin; do
  "$ckpt" convert "$data/edge/$f" "$tmp/$f" 2>"$tmp/err.txt"
  grep -q "dropped 'tied_b'" "$tmp/err.txt"
  [ "$(python3 "$here/st_tensors.py" metadata "$tmp/$f/model.safetensors")" = '{"format": "pt", "tied_b": "tied_a"}' ]
  "$ckpt" convert -q --keep-aliases "$data/edge/$f" "$tmp/$f.all"
  same "$tmp/$f.all/model.safetensors" "$data/edge/edge_ref.safetensors"
done

# --no-verify gives the same bytes; --dry-run writes nothing; --json reports the dropped alias.
"$ckpt" convert -q --no-verify --keep-aliases "$data/edge/edge.bin" "$tmp/nv"
cmp "$tmp/nv/model.safetensors" "$tmp/edge.bin.all/model.safetensors"
"$ckpt" convert --dry-run "$data/edge/edge.bin" "$tmp/dry" | grep -c '"strided_views": 2' >/dev/null
[ ! -e "$tmp/dry" ]
"$ckpt" convert --json "$data/edge/edge.bin" "$tmp/js" 2>/dev/null | grep -c '"tied_b": "tied_a"' >/dev/null
echo "test_convert: ok"
