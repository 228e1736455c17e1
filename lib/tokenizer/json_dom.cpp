#include "tokenizer/json_dom.h"

#include <vector>

#include "formats/strict_json.h"

namespace ckpt::tok {

namespace {

class Builder : public nlohmann::json_sax<json> {
 public:
  explicit Builder(JsonParse& r) : r_(r) {}
  bool null() override { return put(nullptr); }
  bool boolean(bool v) override { return put(v); }
  bool number_integer(number_integer_t v) override { return put(v); }
  bool number_unsigned(number_unsigned_t v) override { return put(v); }
  bool number_float(number_float_t v, const string_t&) override { return put(v); }
  bool string(string_t& v) override { return put(std::move(v)); }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override {
    stack_.push_back({place(json::object()), {}});
    return true;
  }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    if (f.node->contains(k)) {
      r_.error = "the key \"" + k + "\" appears twice in one object";
      return false;
    }
    f.key = k;
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    stack_.push_back({place(json::array()), {}});
    return true;
  }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    r_.error = ex.what();
    return false;
  }

 private:
  struct Frame {
    json* node;
    std::string key;
  };
  template <class T>
  bool put(T&& v) {
    place(json(std::forward<T>(v)));
    return true;
  }
  json* place(json v) {
    if (stack_.empty()) {
      r_.value = std::move(v);
      return &r_.value;
    }
    Frame& f = stack_.back();
    if (f.node->is_object()) {
      auto res = f.node->get_ref<json::object_t&>().emplace(std::move(f.key), std::move(v));
      return &res.first->second;
    }
    auto& arr = f.node->get_ref<json::array_t&>();
    arr.push_back(std::move(v));
    return &arr.back();
  }
  JsonParse& r_;
  std::vector<Frame> stack_;
};

}  // namespace

JsonParse parse_json_checked(std::string_view text) {
  JsonParse r;
  if (!is_valid_utf8(text)) {
    r.error = "not valid UTF-8";
    return r;
  }
  Builder b(r);
  r.ok = json::sax_parse(text.begin(), text.end(), &b, nlohmann::detail::input_format_t::json, true, true);
  if (!r.ok && r.error.empty()) r.error = "malformed JSON";
  return r;
}

}  // namespace ckpt::tok
