// The tokenizer.ggml.* metadata of a GGUF file from the model's own tokenizer (lib/tokenizer), as
// llama.cpp's tokenizers need it to encode exactly as the Hugging Face tokenizer does:
// - byte-level BPE (Llama-3, Qwen2/3, GPT-2 style tokenizer.json) -> model "gpt2" with merges and
//   the pre-tokenizer name llama.cpp implements for the tokenizer's own pre-tokenizer (its Split
//   regex and the BPE model's ignore_merges), checked against llama.cpp's table of pre-tokenizer
//   hashes (ggml-org/llama.cpp conversion/base.py get_vocab_base_pre: sha256 of the ids of a fixed
//   text): a tokenizer the table knows under a pre-tokenizer with other rules is refused;
// - SentencePiece (tokenizer.model, or a tokenizer.json BPE in SentencePiece style: "▁" for
//   spaces, byte fallback) -> model "llama" with scores and token types;
// - anything llama.cpp would tokenize differently (WordLevel, normalizers or pre-tokenizer steps
//   it has no equivalent for) is refused with the reason.
#pragma once

#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "commands/gguf.h"
#include "tokenizer/tokenizer.h"

namespace ckpt {

GgufVocab gguf_vocab_from(const tok::Tokenizer& tokenizer);
// The tokenizer of a checkpoint (tokenizer.json, else tokenizer.model, with tokenizer_config.json),
// read from its side files (side_file_text: on disk, inside a packed checkpoint, or made by an
// earlier pipeline step); refuses a model without one.
GgufVocab gguf_vocab_of_model(const Checkpoint& ck);
// The same for the model files in directory `dir`.
GgufVocab gguf_vocab_of_model(const std::string& dir);

// The text whose token ids llama.cpp's pre-tokenizer table hashes (convert_hf_to_gguf_update.py
// CHK_TXT), and the hash of ids as conversion/base.py computes it: sha256 of Python's str(list).
const std::string& gguf_pre_check_text();
std::string gguf_pre_hash(const std::vector<int32_t>& ids);
// The name llama.cpp's table gives a hash ("" when unknown).
std::string gguf_pre_name_of_hash(const std::string& hash);

}  // namespace ckpt
