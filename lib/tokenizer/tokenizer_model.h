// The parsed tokenizer of a model: what Hugging Face `tokenizers` reads from tokenizer.json (plus
// tokenizer_config.json), or what SentencePiece reads from tokenizer.model, as plain data. It is
// what the encoder (tokenizer.h) runs and what GGUF export writes (vocab in id order, merges,
// token types, scores, special ids, the pre-tokenizer, the chat template).
//
// Only the parts whose behaviour ckpt reproduces exactly are accepted; anything else (a model
// type, normalizer, pre-tokenizer, post-processor or decoder type, an option value) is refused
// with its name (Errc::kTokenizerUnsupported), a malformed file with the field that is wrong
// (Errc::kTokenizerInvalid). Sources of the semantics, per component:
// https://github.com/huggingface/tokenizers/tree/main/tokenizers/src (normalizers/,
// pre_tokenizers/, models/bpe/, models/wordlevel/, processors/template.rs, decoders/,
// tokenizer/added_vocabulary.rs).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::tok {

// Token types numbered as SentencePiece's ModelProto.SentencePiece.Type and llama.cpp's
// llama_token_type / GGUF tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,       // special added tokens (<s>, <|im_start|>, ...)
  kUserDefined = 4,   // added tokens that are not special (Qwen3's <think>)
  kUnused = 5,        // ids the files leave unassigned (a hole in the vocab)
  kByte = 6,          // byte-fallback pieces <0x00> ... <0xFF>
};

enum class ModelKind {
  kBpe,            // tokenizer.json "BPE" (byte-level as GPT-2/Llama-3/Qwen, or SentencePiece-style)
  kWordLevel,      // tokenizer.json "WordLevel"
  kSentencePiece,  // tokenizer.model, run by libsentencepiece
};

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// One step of a normalizer Sequence (a lone normalizer is a sequence of one).
struct NormalizerStep {
  enum Kind { kNfc, kNfd, kNfkc, kNfkd, kPrepend, kReplace } kind = kNfc;
  std::string text;      // Prepend: what is prepended; Replace: the pattern
  bool regex = false;    // Replace: the pattern is a regex ({"Regex": ...}) not a string
  std::string content;   // Replace: the replacement
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// One step of a pre-tokenizer Sequence.
struct PreTokenizerStep {
  enum Kind { kSplit, kByteLevel, kMetaspace, kWhitespace, kWhitespaceSplit, kDigits } kind = kSplit;
  // Split
  std::string pattern;
  bool regex = false;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // ByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
  // Metaspace
  std::string replacement;                               // usually "▁"
  enum class Prepend { kAlways, kNever, kFirst } prepend_scheme = Prepend::kAlways;
  bool split = true;
  // Digits
  bool individual_digits = false;
};

// One step of a decoder Sequence.
struct DecoderStep {
  enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind = kByteLevel;
  std::string pattern, content;          // Replace (string patterns only)
  std::string strip_content;             // Strip: the character stripped
  int strip_start = 0, strip_stop = 0;   // Strip: how many at each end
  std::string replacement;               // Metaspace
  bool prepend_first = true;             // Metaspace: prepend_scheme is not "never"
};

// The TemplateProcessing post-processor for single sequences (pairs are not encoded by ckpt).
struct TemplateItem {
  bool is_sequence = false;   // the text's ids ($A); else the special token's ids
  std::vector<int32_t> ids;   // a special token's ids
};

struct TokenizerModel {
  std::string path;         // tokenizer.json or tokenizer.model
  ModelKind kind = ModelKind::kBpe;
  std::string sentencepiece_proto;  // kSentencePiece: the tokenizer.model bytes the runner loads

  // The vocabulary in id order, added tokens included; ids no file assigns are empty strings with
  // type kUnused. For byte-level BPE the strings are as stored (GPT-2's byte-to-unicode form).
  std::vector<std::string> vocab;
  std::vector<TokenType> token_types;
  // True where the id is in the model's own vocabulary (model.vocab of tokenizer.json, every
  // SentencePiece piece), false for ids only an added token has, and for holes.
  std::vector<bool> in_model_vocab;
  std::vector<float> scores;     // SentencePiece piece scores; empty for tokenizer.json models
  // BPE merges in rank order (rank = index), each pair of vocab strings.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<AddedToken> added_tokens;   // in the file's order

  // model options (BPE; WordLevel uses unk_token only)
  std::optional<std::string> unk_token;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;

  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::vector<DecoderStep> decoder;        // empty: tokens are joined by spaces (HF's default)
  bool byte_level = false;                 // a ByteLevel pre-tokenizer maps bytes to symbols
  // Post-processing of a single sequence with add_special_tokens, after tokenizer_config.json's
  // add_bos_token / add_eos_token were applied (as transformers' Llama-family tokenizers do).
  std::vector<TemplateItem> post_template;
  // The raw JSON text of tokenizer.json's "pre_tokenizer" (for GGUF's tokenizer.ggml.pre choice).
  std::string pre_tokenizer_json;

  // Special ids, from tokenizer_config.json's *_token names (looked up in the vocabulary) or the
  // SentencePiece model.
  std::optional<int32_t> bos_id, eos_id, unk_id, pad_id;
  bool add_bos = false;   // encode(add_special_tokens) puts bos first
  bool add_eos = false;   // ... and eos last
  std::string chat_template;   // tokenizer_config.json's (a string, or the "default" named one)
  std::string tokenizer_class; // tokenizer_config.json's, informational

  std::optional<int32_t> id_of(const std::string& token) const;
};

// Loads a model's tokenizer: MODEL may be a directory (tokenizer.json preferred, else
// tokenizer.model; tokenizer_config.json beside either is read when present) or one of those
// files. Throws ckpt::Error naming the file and what is wrong or unsupported.
TokenizerModel load_tokenizer_model(const std::string& model);

// The files of a model directory by name ("tokenizer_config.json"): the bytes, or nullopt when
// the model has none. A directory on disk, or the side files of a checkpoint (a packed one holds
// them inside its container).
using ModelFileReader = std::function<std::optional<std::string>(const std::string& name)>;
// The tokenizer of the model whose files `read` gives (tokenizer.json, else tokenizer.model, with
// tokenizer_config.json and chat_template.jinja when present); `dir` names them in errors
// ("DIR/tokenizer.json"). nullopt when the model has neither tokenizer file.
std::optional<TokenizerModel> load_tokenizer_model_from(const std::string& dir, const ModelFileReader& read);
// The reader of the files of model directory `dir`: on disk, or inside its packed container
// (checkpoint/dir_files.h), read with read_tokenizer_file.
ModelFileReader directory_file_reader(const std::string& dir);

// A tokenizer file's bytes (tokenizer.json, tokenizer.model, tokenizer_config.json, ...), one over
// 1 GiB refused before anything is allocated. `path` may name a file inside a packed checkpoint
// (formats/packed_source.h).
std::string read_tokenizer_file(const std::string& path);

// The same from in-memory texts (tests): tokenizer.json text and tokenizer_config.json text
// (empty: none). `path` names them in errors.
TokenizerModel parse_tokenizer_json(const std::string& path, const std::string& tokenizer_json,
                                    const std::string& config_json);

}  // namespace ckpt::tok
