#include "formats/strict_json.h"

#include <set>
#include <vector>

namespace ckpt {

namespace {

// Builds an ordered_json DOM through nlohmann's SAX interface so that every object's keys can be
// checked for repeats as they arrive.
class DuplicateCheckingBuilder : public nlohmann::json_sax<ojson> {
 public:
  explicit DuplicateCheckingBuilder(StrictJsonResult& r) : result_(r) {}

  bool null() override { return put(nullptr); }
  bool boolean(bool v) override { return put(v); }
  bool number_integer(number_integer_t v) override { return put(v); }
  bool number_unsigned(number_unsigned_t v) override { return put(v); }
  bool number_float(number_float_t v, const string_t&) override { return put(v); }
  bool string(string_t& v) override { return put(v); }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override {
    ojson* o = place(ojson::object());
    stack_.push_back({o, {}, {}});
    return true;
  }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    if (!f.keys.insert(k).second) {
      result_.duplicate_key = true;
      result_.duplicate = k;
      return false;
    }
    f.pending_key = k;
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    ojson* a = place(ojson::array());
    stack_.push_back({a, {}, {}});
    return true;
  }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    result_.error = ex.what();
    return false;
  }

 private:
  struct Frame {
    ojson* node;
    std::set<std::string> keys;
    std::string pending_key;
  };

  template <class T>
  bool put(T&& v) {
    place(ojson(std::forward<T>(v)));
    return true;
  }
  ojson* place(ojson v) {
    if (stack_.empty()) {
      result_.value = std::move(v);
      return &result_.value;
    }
    Frame& f = stack_.back();
    if (f.node->is_object()) {
      (*f.node)[f.pending_key] = std::move(v);
      return &(*f.node)[f.pending_key];
    }
    f.node->push_back(std::move(v));
    return &f.node->back();
  }

  StrictJsonResult& result_;
  std::vector<Frame> stack_;
};

}  // namespace

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    i += len;
  }
  return true;
}

StrictJsonResult parse_strict_json(std::string_view text) {
  StrictJsonResult r;
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF) {
    r.error = "a UTF-8 byte-order mark is not allowed";
    return r;
  }
  // nlohmann's lexer takes a NUL byte for the end of input, so "{}\0\0" would pass. A raw NUL
  // is never valid JSON (inside strings it must be escaped), so refuse it outright.
  if (text.find('\0') != std::string_view::npos) {
    r.error = "a NUL byte is not allowed (trailing NUL padding?)";
    return r;
  }
  DuplicateCheckingBuilder builder(r);
  bool ok = ojson::sax_parse(text.begin(), text.end(), &builder, nlohmann::json::input_format_t::json,
                             /*strict=*/true, /*ignore_comments=*/false);
  r.ok = ok && !r.duplicate_key && r.error.empty();
  if (!r.ok && r.error.empty() && r.duplicate_key) r.error = "duplicate key '" + r.duplicate + "'";
  return r;
}

}  // namespace ckpt
