// Token ids for the runtime commands, from the command line ("1,5,9") or a file: safetensors
// (an I64/I32/U32 tensor named input_ids, or the file's only integer tensor), JSON (a list of
// ids, or a list of equal-length lists), or NumPy .npy (int64/int32/uint32, little-endian, C
// order, 1-D or 2-D). Read strictly: a malformed file is an error naming it and the rule.
// Text in and out goes through lib/tokenizer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ckpt::model {

// Sequences of equal length, row-major: ids[s * length + t].
struct TokenIds {
  std::vector<int64_t> ids;
  uint64_t sequences = 0, length = 0;
  const int64_t* row(uint64_t s) const { return ids.data() + s * length; }
};

// "1,5,9" -> one sequence.
TokenIds parse_id_list(const std::string& text);

// Reads a file by its extension (.safetensors, .json, .npy).
TokenIds read_token_ids(const std::string& path);

// A command-line ids argument: an existing regular file is read as above, anything else is
// parsed as "1,5,9".
TokenIds read_token_ids_argument(const std::string& text);

// Text through the model's tokenizer as one sequence: the ids Hugging Face's tokenizer(text)
// gives, BOS/EOS as the tokenizer adds them. Refused (naming `what`, the option or file the text
// came from): text that gives no ids, and ids at or above `vocab`, the model's embedding rows (a
// tokenizer whose added tokens lie past the embedding).
TokenIds text_token_ids(const tok::Tokenizer& tokenizer, std::string_view text, uint64_t vocab,
                        const std::string& what);

// Ids back to text through the tokenizer (readable continuations in reports), special tokens
// kept so that an EOS shows; ids the tokenizer does not have are left out, as tokenizers' decode
// leaves them out.
std::string token_ids_text(const tok::Tokenizer& tokenizer, std::span<const int64_t> ids);
// The most bytes of such a text one report line shows (quote() in core/error.h cuts it there).
inline constexpr size_t kContinuationTextBytes = 4096;

// Writes [sequences, length] ids as a safetensors file with one I64 tensor "input_ids".
void write_token_ids(const std::string& path, const TokenIds& ids);

}  // namespace ckpt::model
