#include "core/name_pattern.h"

#include <algorithm>

#include "core/error.h"

namespace ckpt {

namespace {
constexpr const char* kRegexPrefix = "re:";
}

bool glob_match(const std::string& pattern, const std::string& text) {
  // Iterative matcher with one backtrack point (the last '*'): linear in practice, no recursion.
  size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

NamePattern::NamePattern(const std::string& text, const std::string& option) : text_(text) {
  if (text.empty()) fail(Errc::kInvalidArgument, "", "", option + ": an empty pattern");
  if (text.rfind(kRegexPrefix, 0) != 0) return;
  const std::string body = text.substr(3);
  if (body.empty()) fail(Errc::kInvalidArgument, "", "", option + " '" + text + "': an empty regular expression");
  try {
    regex_ = std::make_shared<const std::regex>(body, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail(Errc::kInvalidArgument, "", "", option + " '" + text + "': not a regular expression (" + e.what() + ")");
  }
}

bool NamePattern::matches(const std::string& name) const {
  if (!regex_) return glob_match(text_, name);
  // Anchored at the start only, as Python's re.match.
  return std::regex_search(name, *regex_, std::regex_constants::match_continuous);
}

std::vector<NamePattern> parse_name_patterns(const std::vector<std::string>& texts, const std::string& option) {
  std::vector<NamePattern> out;
  for (const auto& t : texts) out.emplace_back(t, option);
  return out;
}

bool matches_any(const std::vector<NamePattern>& patterns, const std::string& name) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const NamePattern& p) { return p.matches(name); });
}

}  // namespace ckpt
