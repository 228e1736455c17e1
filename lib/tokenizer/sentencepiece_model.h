// tokenizer.model (SentencePiece's ModelProto): the pieces, scores and types as a TokenizerModel,
// and the SentencePiece processor that encodes with it (libsentencepiece, Debian's
// libsentencepiece-dev: https://github.com/google/sentencepiece).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ckpt::tok {

// Reads tokenizer.model: pieces in id order, scores, types; bos/eos/unk/pad ids from the
// SentencePiece model; the template bos $A (LlamaTokenizer's defaults, add_bos_token=True,
// add_eos_token=False), which tokenizer_config.json may change.
TokenizerModel load_sentencepiece_model(const std::string& path);
// The same from the file's bytes (`path` names it in errors): a tokenizer.model inside a packed
// checkpoint has no file of its own.
TokenizerModel parse_sentencepiece_model(const std::string& path, const std::string& data);

// A loaded SentencePiece processor, from the model file's bytes (`path` names it in errors).
class SentencePieceRunner {
 public:
  SentencePieceRunner(const std::string& path, const std::string& proto);
  ~SentencePieceRunner();
  SentencePieceRunner(const SentencePieceRunner&) = delete;
  SentencePieceRunner& operator=(const SentencePieceRunner&) = delete;
  void encode(std::string_view text, std::vector<int32_t>* out) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace ckpt::tok
