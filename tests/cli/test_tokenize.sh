#!/usr/bin/env bash
# ckpt tokenize: ids and pieces of a real Llama-2 tokenizer.json, --json, --decode back to the
# text, and a malformed tokenizer.json refused with one error line naming the file.
set -euo pipefail
ckpt=$1; data=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
out=$("$ckpt" tokenize "$data/llama-trained" --text "Hello world")
grep -q '^3 tokens$' <<<"$out" || { echo "want 3 tokens: $out"; exit 1; }
grep -qP '^1\t<s>$' <<<"$out" || { echo "no BOS line: $out"; exit 1; }
json=$("$ckpt" tokenize "$data/llama-trained" --text "Hello world" --json --no-special)
ids=$(python3 -c 'import json,sys; print(",".join(map(str, json.loads(sys.argv[1])["ids"])))' "$json")
[ "$("$ckpt" tokenize "$data/llama-trained" --decode "$ids")" = "Hello world" ] || { echo "decode $ids"; exit 1; }
printf 'caf\xc3\xa9\n\tx' > "$tmp/in.txt"
n=$("$ckpt" tokenize "$data/llama-trained" --file "$tmp/in.txt" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$n" -gt 3 ] || { echo "file: $n ids"; exit 1; }
mkdir "$tmp/bad"; echo '{"model": {"type": "Unigram", "vocab": []}}' > "$tmp/bad/tokenizer.json"
if err=$("$ckpt" tokenize "$tmp/bad" --text x 2>&1); then echo "accepted a Unigram model"; exit 1; fi
grep -q "bad/tokenizer.json: model type \"Unigram\"" <<<"$err" || { echo "error: $err"; exit 1; }
[ "$(wc -l <<<"$err")" = 1 ] || { echo "more than one line: $err"; exit 1; }
# forward --text runs the model on the tokenizer's ids: the same output as --ids with those ids.
ids_bos=$("$ckpt" tokenize "$data/llama-trained" --text "Hello world" --json | python3 -c 'import json,sys; print(",".join(map(str, json.load(sys.stdin)["ids"])))')
[ "$("$ckpt" forward "$data/llama-trained" --text "Hello world")" = "$("$ckpt" forward "$data/llama-trained" --ids "$ids_bos")" ] \
  || { echo "forward --text differs from --ids $ids_bos"; exit 1; }
echo "tokenize: ok"
