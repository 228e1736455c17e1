#include "tokenizer/regex.h"

#include <oniguruma.h>

#include <memory>
#include <mutex>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace ckpt::tok {

namespace {
std::once_flag g_onig_init;
struct RegionFree {
  void operator()(OnigRegion* r) const { onig_region_free(r, 1); }
};
}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) {
  std::call_once(g_onig_init, [] {
    OnigEncoding encodings[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
  OnigRegex re = nullptr;
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  int rc = onig_new(&re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
  if (rc != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, rc, &info);
    fail(Errc::kTokenizerInvalid, where, "", "regex does not compile: " + std::string(reinterpret_cast<char*>(msg)));
  }
  regex_ = re;
}

Regex::~Regex() {
  if (regex_) onig_free(static_cast<OnigRegex>(regex_));
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  out->clear();
  std::unique_ptr<OnigRegion, RegionFree> region(onig_region_new());
  const auto* s = reinterpret_cast<const OnigUChar*>(text.data());
  const OnigUChar* end = s + text.size();
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    onig_region_clear(region.get());
    int r = onig_search(static_cast<OnigRegex>(regex_), s, end, s + pos, end, region.get(), ONIG_OPTION_NONE);
    if (r < 0) break;   // ONIG_MISMATCH (search errors cannot happen on valid UTF-8)
    size_t b = static_cast<size_t>(region->beg[0]), e = static_cast<size_t>(region->end[0]);
    if (b == e && have_last && last_end == e) {
      // onig crate FindMatches: step one character past an empty match at the previous end.
      pos += pos < text.size() ? utf8_len(static_cast<unsigned char>(text[pos])) : 1;
      continue;
    }
    out->emplace_back(b, e);
    have_last = true;
    last_end = e;
    pos = e;
    if (b == e) pos += pos < text.size() ? utf8_len(static_cast<unsigned char>(text[pos])) : 1;
  }
}

}  // namespace ckpt::tok
