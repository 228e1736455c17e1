// JSON parsing with the strictness untrusted headers need: duplicate object keys are refused
// (most parsers silently keep the last one, which lets two tools read one file differently), a
// byte-order mark is refused (serde_json, the reference's parser, refuses it too), and objects
// keep their key order.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ckpt {

using ojson = nlohmann::ordered_json;

struct StrictJsonResult {
  bool ok = false;
  ojson value;
  std::string error;          // parser message when !ok
  bool duplicate_key = false; // the failure was a repeated key
  std::string duplicate;      // that key
};

StrictJsonResult parse_strict_json(std::string_view text);

// True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

}  // namespace ckpt
