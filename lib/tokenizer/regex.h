// The regex engine of Hugging Face tokenizers' Split patterns: Oniguruma
// (https://github.com/kkos/oniguruma), compiled as tokenizers' utils/onig.rs compiles them
// (onig::Regex::new: no options, the library's default syntax, UTF-8).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ckpt::tok {

class Regex {
 public:
  // Throws Errc::kTokenizerInvalid naming `where` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Every match in `text` as [begin, end) byte offsets, left to right, as the onig crate's
  // find_iter yields them (an empty match right after the previous one is skipped).
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;

 private:
  void* regex_ = nullptr;   // OnigRegex
};

}  // namespace ckpt::tok
