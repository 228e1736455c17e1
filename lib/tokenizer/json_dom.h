// JSON for tokenizer files: nlohmann::json (sorted objects, O(log n) lookups: a tokenizer.json
// holds objects of several hundred thousand keys, which ordered_json would index linearly), with
// repeated object keys refused as formats/strict_json.h refuses them (a vocabulary that lists a
// token twice must not silently keep one of its ids).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ckpt::tok {

using json = nlohmann::json;

struct JsonParse {
  bool ok = false;
  json value;
  std::string error;   // when !ok: the parser's message, or the repeated key
};

JsonParse parse_json_checked(std::string_view text);

}  // namespace ckpt::tok
