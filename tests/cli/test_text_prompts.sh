#!/usr/bin/env bash
# Text prompts through the model's tokenizer (issue 17): forward --generate prints the
# continuation as text, perplexity --text/--file equal --ids with the tokenizer's ids, and
# validate --against --text reports the continuations as text (table and JSON report).
set -euo pipefail
ckpt=$1; data=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# forward --generate prints the continuation as text through the same tokenizer.
out=$("$ckpt" forward "$data/llama-trained" --text "Once upon a time" --generate 4)
gen=$(sed -n 's/^generated: //p' <<<"$out" | tr ' ' ',')
want=$("$ckpt" tokenize "$data/llama-trained" --decode "$gen")
grep -qxF "  text: '$want'" <<<"$out" || { echo "forward: no text line '$want': $out"; exit 1; }
# perplexity --file / --text: the tokenizer's ids of the text, the same result as --ids with them.
python3 -c 'print("One day a little girl named Lily found a needle in her room. " * 6, end="")' > "$tmp/story.txt"
"$ckpt" tokenize "$data/llama-trained" --file "$tmp/story.txt" --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["ids"]))' > "$tmp/story_ids.json"
p_file=$("$ckpt" perplexity "$data/llama-trained" --file "$tmp/story.txt" --seq-len 32 --json)
p_ids=$("$ckpt" perplexity "$data/llama-trained" --ids "$tmp/story_ids.json" --seq-len 32 --json)
[ "$p_file" = "$p_ids" ] || { echo "perplexity --file differs from --ids: $p_file / $p_ids"; exit 1; }
p_text=$("$ckpt" perplexity "$data/llama-trained" --text "$(cat "$tmp/story.txt")" --seq-len 32 --json)
[ "$p_text" = "$p_ids" ] || { echo "perplexity --text differs from --ids"; exit 1; }
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["chunks"] >= 2 and 1 < r["perplexity"] < 1e6, r' "$p_file"
if err=$("$ckpt" perplexity "$data/llama-trained" --text x --ids 1,2 2>&1); then echo "perplexity took --text with --ids"; exit 1; fi
# validate --against --text: the prompt through SRC's tokenizer; continuations as text in the
# table and the JSON report.
"$ckpt" validate "$data/llama-trained" --against "$data/llama-trained" --cpu-only --text "Once upon a time" \
  --generate 4 --report "$tmp/report.json" > "$tmp/val.out"
grep -qxF "    src text: '$want'" "$tmp/val.out" || { cat "$tmp/val.out"; echo "validate: no src text line"; exit 1; }
python3 - "$tmp/report.json" "$want" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = next(p for p in r["phases"] if p["phase"].startswith("against"))["details"]
assert d["ids"] == "text" and d["src_generated_text"] == [sys.argv[2]] == d["dst_generated_text"], d
PY
echo "text prompts: ok"
