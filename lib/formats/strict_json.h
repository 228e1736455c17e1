// JSON parsing with the strictness untrusted headers need: duplicate object keys are refused
// (most parsers silently keep the last one, which lets two tools read one file differently), a
// byte-order mark is refused (serde_json, the reference's parser, refuses it too), nesting is
// bounded as serde_json bounds it, and objects keep their key order. Every JSON document the
// project reads (safetensors headers, index files, config.json, recipes, manifests) goes through
// parse_strict_json.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ckpt {

using ojson = nlohmann::ordered_json;

// serde_json's default recursion limit (serde_json/src/de.rs, `remaining_depth: 128`): 127 nested
// arrays/objects parse, the 128th is refused.
inline constexpr size_t kMaxJsonDepth = 128;

struct StrictJsonResult {
  bool ok = false;
  ojson value;
  std::string error;          // parser message when !ok
  bool duplicate_key = false; // the failure was a repeated key
  std::string duplicate;      // that key
  bool too_deep = false;      // the failure was nesting past kMaxJsonDepth
};

StrictJsonResult parse_strict_json(std::string_view text);

// A JSON value for an error message: compact, escaped and cut like every untrusted string
// (printable() in core/error.h), so a 20 MB value or a control character never reaches the line.
std::string json_excerpt(const ojson& value);

// True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

}  // namespace ckpt
