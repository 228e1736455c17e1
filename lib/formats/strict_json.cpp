#include "formats/strict_json.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/hash.h"

namespace ckpt {

namespace {

// Builds an ordered_json DOM through nlohmann's SAX interface so that every object's keys can be
// checked for repeats as they arrive and nesting is bounded. The work per value is constant:
// repeats are found by hashing, and members are appended to the object's underlying vector
// (ordered_map's own operator[] searches the members linearly, which made a header of 100k tensors
// quadratic).
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
    if (!enter()) return false;
    ojson* o = place(ojson::object());
    stack_.push_back({o, {}, {}});
    return true;
  }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    if (!f.keys.insert(hash_bytes(k.data(), k.size())) && is_member(f, k)) {
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
    if (!enter()) return false;
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
  // The 64-bit hashes of an object's keys, in an open-addressing table: a tokenizer.json's
  // vocabulary is one object of every token (32k-256k keys), and a set of the strings allocated
  // a node and a copy per key, a sixth of `ckpt gguf`'s whole planning. Equal hashes are
  // confirmed against the keys themselves (is_member), so a collision is never a false refusal.
  class KeyHashes {
   public:
    // Adds h; false if it was there already.
    bool insert(uint64_t h) {
      if (h == 0) h = 1;  // 0 marks an empty slot
      if (2 * (n_ + 1) > slots_.size()) grow();
      for (size_t i = h & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
        if (slots_[i] == h) return false;
        if (slots_[i] == 0) {
          slots_[i] = h;
          ++n_;
          return true;
        }
      }
    }

   private:
    void grow() {
      std::vector<uint64_t> old(std::max<size_t>(16, 2 * slots_.size()), 0);
      old.swap(slots_);
      n_ = 0;
      for (uint64_t h : old)
        if (h) insert(h);
    }
    std::vector<uint64_t> slots_;
    size_t n_ = 0;
  };
  struct Frame {
    ojson* node;
    KeyHashes keys;
    std::string pending_key;
  };
  static bool is_member(const Frame& f, const std::string& k) {
    const auto& members = static_cast<const ojson::object_t::Container&>(f.node->get_ref<const ojson::object_t&>());
    return std::any_of(members.begin(), members.end(), [&](const auto& m) { return m.first == k; });
  }

  // Deep nesting is refused before it is built: copying, printing or destroying a DOM recurses
  // once per level, and a 200 KB header of 100,000 brackets overflowed the stack.
  bool enter() {
    if (stack_.size() + 1 < kMaxJsonDepth) return true;
    result_.too_deep = true;
    result_.error = "JSON nesting is deeper than " + std::to_string(kMaxJsonDepth - 1) +
                    " levels (serde_json, the safetensors crate's parser, stops at " + std::to_string(kMaxJsonDepth) + ")";
    return false;
  }

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
      // The key is new (checked in key()), so it is appended without ordered_map's linear search.
      auto& members = static_cast<ojson::object_t::Container&>(f.node->get_ref<ojson::object_t&>());
      members.emplace_back(std::move(f.pending_key), std::move(v));
      return &members.back().second;
    }
    f.node->push_back(std::move(v));
    return &f.node->back();
  }

  StrictJsonResult& result_;
  std::vector<Frame> stack_;
};

}  // namespace

std::string json_excerpt(const ojson& value) {
  return printable(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kQuotedBytes);
}

bool is_valid_utf8(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0, len; i < s.size(); i += len)
    if ((len = utf8_char(s.substr(i), &cp)) == 0) return false;
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
  r.ok = ok && !r.duplicate_key && !r.too_deep && r.error.empty();
  if (!r.ok && r.error.empty() && r.duplicate_key) r.error = "duplicate key '" + r.duplicate + "'";
  return r;
}

}  // namespace ckpt
