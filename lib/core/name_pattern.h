// Tensor and module name patterns as users write them on the command line (cast --keep/--only,
// quantize --ignore): a glob where '*' matches any run of characters (including '.'), or, with
// llm-compressor's "re:" prefix, a regular expression matched from the start of the name as
// compressed-tensors' match_name does (`re.match(target.removeprefix("re:"), name)`,
// compressed_tensors/utils/match.py), so an ignore list written for llm-compressor works here.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace ckpt {

// Glob match where '*' matches any run of characters (including '.') and everything else is
// literal (recipes' tensor rules, and NamePattern without "re:").
bool glob_match(const std::string& pattern, const std::string& text);

class NamePattern {
 public:
  // Fails (kInvalidArgument, naming `option`) for an empty pattern or a regex that does not parse.
  NamePattern(const std::string& text, const std::string& option);
  bool matches(const std::string& name) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::shared_ptr<const std::regex> regex_;  // null: a glob
};

std::vector<NamePattern> parse_name_patterns(const std::vector<std::string>& texts, const std::string& option);
bool matches_any(const std::vector<NamePattern>& patterns, const std::string& name);

}  // namespace ckpt
