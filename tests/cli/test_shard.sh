# ckpt shard / merge end to end: per-rank directories, refusals that leave nothing behind,
# --dry-run, merge back to the source bytes.
source "$(dirname "$0")/lib.sh"

"$ckpt" shard "$td/llama" "$scratch/tp4" --tp 4 -q || fail "shard --tp 4"
for r in 0 1 2 3; do
  d="$scratch/tp4/rank-$r"
  [ -f "$d/model.safetensors" ] && [ -f "$d/config.json" ] && [ -f "$d/tokenizer.json" ] \
    && pass "rank-$r is a complete directory" || fail "rank-$r incomplete"
  python3 - "$d" "$r" <<'PY' && pass "rank-$r config block and metadata" || fail "rank-$r block/metadata"
import json, struct, sys
d, r = sys.argv[1], int(sys.argv[2])
b = json.load(open(d + "/config.json"))["ckpt_parallel"]
assert (b["tp_size"], b["tp_rank"], b["pp_size"], b["layer_range"], b["recipe"]) == (4, r, 1, [0, 2], "llama"), b
f = open(d + "/model.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
assert h["__metadata__"] == {"format": "pt", "tp_size": "4", "tp_rank": str(r), "pp_size": "1", "pp_stage": "0"}, h["__metadata__"]
assert h["model.layers.0.self_attn.q_proj.weight"]["shape"] == [16, 64]
assert h["model.layers.0.self_attn.k_proj.weight"]["shape"] == [8, 64]   # 2 KV heads at tp 4: replicated
assert h["model.layers.0.self_attn.o_proj.weight"]["shape"] == [64, 16]
PY
done
"$ckpt" merge "$scratch/tp4" "$scratch/back" -q || fail "merge"
cmp -s "$scratch/back/model.safetensors" "$td/llama/model.safetensors" && pass "merge gives the source file back byte for byte" \
  || fail "merged file differs"
cmp -s "$scratch/back/config.json" "$td/llama/config.json" && pass "merge restores config.json" || fail "config.json differs"

# Phi-3 (vocab 300 -> padded 320) with pipeline stages.
"$ckpt" shard "$td/phi3" "$scratch/phi" --tp 2 --pp 2 -q || fail "shard --pp"
[ -f "$scratch/phi/stage-1/rank-1/model.safetensors" ] && pass "stage-s/rank-r layout" || fail "no stage dirs"
"$ckpt" merge "$scratch/phi" "$scratch/phi-back" -q && cmp -s "$scratch/phi-back/model.safetensors" "$td/phi3/model.safetensors" \
  && pass "pp merge byte for byte" || fail "pp merge"

# Refusals: the reason, the valid degrees, nothing left behind.
expect_error 2 "num_attention_heads 8 is not divisible by --tp 3; valid --tp for this model: 1, 2, 4, 8" \
  "$ckpt" shard "$td/llama" "$scratch/bad" --tp 3
[ ! -e "$scratch/bad" ] && [ -z "$(ls -A "$scratch" | grep -v -e tp4 -e back -e phi -e '^\.err$' -e partial)" ] \
  && pass "refusal left nothing behind" || fail "refusal left files: $(ls -A "$scratch")"
expect_error 2 "smaller than --tp 16" "$ckpt" shard "$td/llama" "$scratch/bad" --tp 16
expect_error 2 "only 4 experts" "$ckpt" shard "$td/mixtral" "$scratch/bad" --tp 8 --ep
expect_error 2 "more than num_hidden_layers 2" "$ckpt" shard "$td/llama" "$scratch/bad" --tp 1 --pp 3
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["rules"]=[x for x in r["rules"] if x.get("match")!="model.norm.weight"]; json.dump(r,open(sys.argv[2],"w"))' \
  "$td/../recipes/llama.json" "$scratch/partial.json"
expect_error 1 "no rule for 1 tensor: model.norm.weight" \
  "$ckpt" shard "$td/llama" "$scratch/bad" --tp 2 --recipe "$scratch/partial.json"
expect_error 1 "not a ckpt shard output" "$ckpt" merge "$td/llama" "$scratch/bad"
[ ! -e "$scratch/bad" ] && pass "nothing written on refusal" || fail "bad output exists"

# --dry-run: the plan covers every rank, nothing written.
"$ckpt" shard "$td/qwen2" "$scratch/dry" --tp 8 --dry-run \
  | python3 -c 'import json,sys; p=json.load(sys.stdin); assert len(p["files"])==8 and p["files"][7]["name"]=="rank-7/model.safetensors"' \
  && pass "dry-run plan" || fail "dry-run plan"
[ ! -e "$scratch/dry" ] && pass "dry-run wrote nothing" || fail "dry-run wrote output"
# Block-FP8: every rank's slice of a quantized weight must be whole blocks (vLLM's block-FP8
# loader). The 64-wide llama with 128x128 blocks shards at no tp > 1 (k_proj has 16 rows), in
# either format (the refusal lists the valid degrees); with 8x8 blocks tp 2 works.
"$ckpt" quantize --fp8 --scheme block "$td/llama" "$scratch/b128" -q || fail "quantize block 128"
"$ckpt" quantize --fp8 --scheme block --format compressed-tensors "$td/llama" "$scratch/b128ct" -q || fail "quantize block ct"
for d in b128 b128ct; do
  expect_error 2 "q_proj.weight': cannot shard at --tp 2: block-FP8: rank 0's slice of 32 rows is not a multiple of the 128x128 block.*valid --tp for this model: 1 " \
    "$ckpt" shard --tp 2 "$scratch/$d" "$scratch/$d-tp2"
  [ ! -e "$scratch/$d-tp2" ] || fail "$d: refused shard left output"
done
"$ckpt" quantize --fp8 --scheme block --block 8x8 "$td/llama" "$scratch/b8" -q || fail "quantize block 8"
"$ckpt" shard --tp 2 "$scratch/b8" "$scratch/b8-tp2" -q && pass "block 8x8 at tp 2" || fail "block 8x8 at tp 2"
finish
