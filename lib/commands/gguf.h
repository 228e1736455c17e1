// `ckpt gguf`: one GGUF file that llama.cpp loads, from a Hugging Face checkpoint of Llama
// (2/3/3.1, HF Mistral, Mixtral), Qwen2, Qwen3 or Phi-3 — tensor names, shapes, Q/K row order,
// expert stacks, rope_freqs and metadata as ggml-org/llama.cpp's convert_hf_to_gguf.py writes
// them, and the quantized types as llama-quantize picks and encodes them. Sources: the llama.cpp
// v0.4.0 tree that node-llama-cpp 3.21.1 bundles: conversion/{base,llama,qwen,phi}.py,
// gguf-py/gguf/{constants,tensor_mapping}.py, src/llama-quant.cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "formats/gguf.h"
#include "plan/plan.h"

namespace ckpt {

// What --type asks for. The float types and q8_0 are convert_hf_to_gguf.py's --outtype; q4_0,
// q4_1, q6_k are llama-quantize's Q4_0 / Q4_1 / Q6_K files and q4_k its Q4_K_M mix (attn_v and
// ffn_down of some layers in Q6_K, output in Q6_K; shape fallbacks Q4_K -> Q5_0, Q6_K -> Q8_0),
// made from the exact float32 values of the source. auto: F16 when the first source tensor is
// F16, else BF16 (convert's rule).
enum class GgufType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kQ4_K_M, kQ6_K, kAuto };
std::optional<GgufType> gguf_type_from_name(const std::string& name);  // "q4_k" -> kQ4_K_M

// The tokenizer as GGUF stores it (tokenizer.ggml.*): SentencePiece-style vocabularies as model
// "llama" with scores, byte-level BPE as "gpt2" with merges and a pre-tokenizer name.
struct GgufVocab {
  std::string model;                 // "llama" or "gpt2"
  std::string pre;                   // tokenizer.ggml.pre ("default", "llama-bpe", "qwen2", ...)
  std::vector<std::string> tokens;   // id order, unique
  std::vector<int32_t> types;        // llama_token_type per token (1 normal ... 6 byte)
  std::vector<float> scores;         // "llama" only: one per token
  std::vector<std::string> merges;   // "gpt2" only: "left right" in rank order
  std::optional<uint32_t> bos, eos, unk, pad;
  std::optional<bool> add_bos, add_eos;
  std::optional<bool> add_space_prefix;  // "llama" only; absent: llama.cpp's default (true)
  std::string chat_template;         // empty: none
  // "gpt2": llama.cpp's pre-tokenizer hash of this tokenizer and the name its table gives it ("":
  // unknown); recorded in the plan's notes.
  std::string pre_hash, pre_hash_name;
};

struct GgufOptions {
  GgufType type = GgufType::kAuto;
  std::string file_name = "model.gguf";  // the output file's name
  std::string model_name;                // general.name (default: the source directory's name)
  // --split-max-size: the most tensor bytes per file (0: one file). As convert_hf_to_gguf.py
  // (gguf-py GGUFWriter): a new file starts when the next tensor would exceed it; more than one
  // file are named "<file_name without .gguf>-00001-of-0000N.gguf" (llama.cpp's llama_split_path)
  // and carry split.no / split.count / split.tensors.count, the metadata only in the first.
  uint64_t split_max_bytes = 0;
};

// Fails with kUnsupported for an architecture or tensor outside the list above, kInvalidArgument
// for a vocabulary that does not fit the embedding rows or a tensor whose shape the type cannot take.
Plan plan_gguf(const Checkpoint& ck, const GgufVocab& vocab, const GgufOptions& options);

// llama.cpp's Q/K row order for rotary pairs (convert's LlamaModel.permute): the rows of each of
// `heads` heads, in HF's rotate-half order (i pairs with i + hd/2), re-ordered so pairs are
// adjacent: new row h*hd + 2i + j = old row h*hd + j*hd/2 + i. A strided view, no copy.
SourceView permute_for_llama_rope(const SourceView& rows, uint64_t heads);

}  // namespace ckpt
