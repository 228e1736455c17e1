// UTF-8 and Unicode helpers of the tokenizer: invalid input replaced as Python's
// bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy replace it, Unicode
// normalization through utf8proc (https://github.com/JuliaStrings/utf8proc), and the character
// classes tokenizers' Rust code asks about (char::is_whitespace, char::is_numeric, regex \w).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ckpt::tok {

// Each maximal ill-formed subpart becomes U+FFFD (the Unicode Standard's "best practice", ch. 3,
// U+FFFD substitution of maximal subparts). Valid input is returned unchanged.
std::string sanitize_utf8(std::string_view bytes);

// The code point at p (valid UTF-8, n > 0 bytes left) and its length in bytes.
uint32_t decode_utf8(const char* p, size_t* len);
inline size_t utf8_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}
void append_utf8(uint32_t cp, std::string* out);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// `text` must be valid UTF-8.
std::string normalize(std::string_view text, NormalForm form);

bool is_whitespace(uint32_t cp);   // Rust char::is_whitespace (White_Space)
bool is_numeric(uint32_t cp);      // Rust char::is_numeric (Nd, Nl, No)
bool is_word_char(uint32_t cp);    // Rust regex \w (letters, marks, Nd, Pc, Nl, ZWNJ/ZWJ)

}  // namespace ckpt::tok
