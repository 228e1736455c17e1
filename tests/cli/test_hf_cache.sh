# A model in the local Hugging Face cache, named as huggingface-cli and transformers name it
# (issue 12): "org/name" looked up under HF_HUB_CACHE / HF_HOME, or its models--org--name folder,
# read from the snapshot refs/main points to (files are symlinks into blobs/, as the cache
# stores them). Nothing is ever fetched.
source "$(dirname "$0")/lib.sh"

# $1/hub/models--org--tiny: the tiny Llama as huggingface_hub lays a download out.
make_cache() {
  local repo=$1/hub/models--org--tiny rev=0123456789abcdef0123456789abcdef01234567
  mkdir -p "$repo/blobs" "$repo/refs" "$repo/snapshots/$rev"
  for f in model.safetensors config.json tokenizer.json tokenizer_config.json; do
    local blob
    blob=$(sha256sum "$td/llama/$f" | cut -c1-64)
    cp "$td/llama/$f" "$repo/blobs/$blob"
    ln -s "../../blobs/$blob" "$repo/snapshots/$rev/$f"
  done
  printf '%s' "$rev" >"$repo/refs/main"
}
make_cache "$scratch/hf"

out=$(HF_HOME="$scratch/hf" "$ckpt" inspect org/tiny 2>&1)
grep -q "architecture LlamaForCausalLM" <<<"$out" && grep -q "snapshots/0123456789abcdef" <<<"$out" \
  && pass "inspect org/tiny through HF_HOME" || fail "inspect org/tiny: $out"
HF_HOME=/nonexistent HF_HUB_CACHE="$scratch/hf/hub" "$ckpt" inspect org/tiny >/dev/null \
  && pass "HF_HUB_CACHE wins over HF_HOME" || fail "HF_HUB_CACHE"
"$ckpt" inspect "$scratch/hf/hub/models--org--tiny" | grep -c "LlamaForCausalLM" >/dev/null \
  && pass "inspect of the models--org--tiny folder" || fail "inspect of the models--org--tiny folder"

# A writing command: the same bytes as from the directory itself, side files as regular files.
HF_HOME="$scratch/hf" "$ckpt" rechunk org/tiny "$scratch/out" -q && "$ckpt" rechunk "$td/llama" "$scratch/ref" -q
if cmp -s "$scratch/out/model.safetensors" "$scratch/ref/model.safetensors" && cmp -s "$scratch/out/config.json" "$td/llama/config.json" \
   && [ -f "$scratch/out/tokenizer.json" ] && [ ! -L "$scratch/out/tokenizer.json" ]; then
  pass "rechunk org/tiny = rechunk of the directory"
else
  fail "rechunk org/tiny: $(ls -l "$scratch/out")"
fi

# Not cached: one error naming where it looked, and that ckpt does not download.
expect_error 1 "org/absent: .*$scratch/hf/hub/models--org--absent.*never downloads.*no_checkpoint" \
  env HF_HOME="$scratch/hf" "$ckpt" inspect org/absent
# A local directory of that name wins over the cache, as in transformers.
mkdir -p "$scratch/cwd/org" && cp -r "$td/mistral" "$scratch/cwd/org/tiny"
abs_ckpt=$(realpath "$ckpt")
(cd "$scratch/cwd" && HF_HOME="$scratch/hf" "$abs_ckpt" inspect org/tiny) | grep -c "MistralForCausalLM" >/dev/null \
  && pass "a local org/tiny directory wins" || fail "a local org/tiny directory did not win"
finish
