// Text to token ids and back, token for token as Hugging Face tokenizers (0.23) encodes and
// decodes with the same tokenizer.json: added tokens matched first
// (tokenizer/added_vocabulary.rs), the normalizer on the text between them, the pre-tokenizer,
// the model (BPE merges by rank, or WordLevel), the post-processor's template
// (add_special_tokens); decode through the decoder chain. tokenizer.model runs through
// SentencePiece. Input that is not valid UTF-8 is first replaced as Python's
// bytes.decode("utf-8", "replace") does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace ckpt::tok {

class Tokenizer {
 public:
  // Builds the runtime tables; refuses (Errc::kTokenizerInvalid/kTokenizerUnsupported) merges whose
  // tokens are not in the vocabulary, patterns that do not compile, steps in an order ckpt does
  // not reproduce.
  explicit Tokenizer(TokenizerModel model);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  // load_tokenizer_model(path) and the above.
  static Tokenizer load(const std::string& path);
  // The tokenizer of a model directory (plain or packed) when it ships one, else nullopt; a
  // tokenizer file that is there but malformed or unsupported still throws.
  static std::optional<Tokenizer> load_if_present(const std::string& dir);

  const TokenizerModel& model() const;
  size_t vocab_size() const { return model().vocab.size(); }

  // Thread-safe (each call has its own merge cache; encode_batch shares one across its texts).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string_view> texts,
                                                 bool add_special_tokens) const;
  // Ids that are not in the vocabulary are skipped (as tokenizers does).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;
  // The vocabulary string of one id ("" when it has none).
  const std::string& piece(int32_t id) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckpt::tok
