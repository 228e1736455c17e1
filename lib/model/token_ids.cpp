#include "model/token_ids.h"

#include <sys/stat.h>

#include <cstring>
#include <regex>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/safetensors_small.h"
#include "formats/strict_json.h"

namespace ckpt::model {

namespace {

constexpr uint64_t kMaxIds = 1ull << 28;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t load_int(const uint8_t* p, unsigned bytes, bool is_signed) {
  uint64_t u = 0;
  for (unsigned i = 0; i < bytes; ++i) u |= static_cast<uint64_t>(p[i]) << (8 * i);
  if (bytes == 4) return is_signed ? static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(u))) : static_cast<int64_t>(u);
  return static_cast<int64_t>(u);
}

// [rows, cols] (or [n] as one row) of little-endian integers.
TokenIds from_elements(const std::string& path, const std::vector<uint64_t>& shape, const uint8_t* data,
                       unsigned bytes, bool is_signed) {
  TokenIds t;
  if (shape.size() == 1) t = {{}, 1, shape[0]};
  else if (shape.size() == 2) t = {{}, shape[0], shape[1]};
  else fail(Errc::kInvalidArgument, path, "", "token ids must be 1-D or 2-D, not " + shape_to_string(shape));
  if (t.sequences == 0 || t.length == 0 || t.sequences * t.length > kMaxIds)
    fail(Errc::kInvalidArgument, path, "", "token ids " + shape_to_string(shape) + ": empty or too many");
  t.ids.resize(t.sequences * t.length);
  for (size_t i = 0; i < t.ids.size(); ++i) {
    t.ids[i] = load_int(data + i * bytes, bytes, is_signed);
    if (t.ids[i] < 0) fail(Errc::kInvalidArgument, path, "", "token id " + std::to_string(t.ids[i]) + " is negative");
  }
  return t;
}

TokenIds read_safetensors_ids(const std::string& path) {
  std::vector<SmallTensor> all = read_small_safetensors(path);
  const SmallTensor* pick = nullptr;
  size_t ints = 0;
  auto is_int = [](DType d) { return d == DType::I64 || d == DType::I32 || d == DType::U32; };
  for (const auto& t : all) {
    if (t.name == "input_ids") pick = &t;
    ints += is_int(t.dtype);
  }
  if (!pick) {
    if (ints != 1) fail(Errc::kInvalidArgument, path, "", "no tensor 'input_ids' and not exactly one integer tensor");
    for (const auto& t : all)
      if (is_int(t.dtype)) pick = &t;
  }
  if (!is_int(pick->dtype))
    fail(Errc::kInvalidArgument, path, pick->name, "token ids must be I64, I32 or U32, not " + std::string(dtype_name(pick->dtype)));
  return from_elements(path, pick->shape, pick->bytes.data(), dtype_bits(pick->dtype) / 8, pick->dtype != DType::U32);
}

TokenIds read_json_ids(const std::string& path) {
  StrictJsonResult r = parse_strict_json(read_text_file(path));
  if (!r.ok) fail(Errc::kInvalidArgument, path, "", "not valid JSON: " + r.error);
  const ojson& v = r.value;
  auto id = [&](const ojson& x) -> int64_t {
    if (!x.is_number_integer() || x.get<int64_t>() < 0) fail(Errc::kInvalidArgument, path, "", "token ids must be non-negative integers, found " + json_excerpt(x));
    return x.get<int64_t>();
  };
  TokenIds t;
  if (!v.is_array() || v.empty()) fail(Errc::kInvalidArgument, path, "", "expected a list of ids or a list of lists of ids");
  if (v[0].is_array()) {
    t.sequences = v.size();
    t.length = v[0].size();
    for (const auto& row : v) {
      if (!row.is_array() || row.size() != t.length || row.empty())
        fail(Errc::kInvalidArgument, path, "", "every sequence must be a non-empty list of the same length");
      for (const auto& x : row) t.ids.push_back(id(x));
    }
  } else {
    t.sequences = 1;
    t.length = v.size();
    for (const auto& x : v) t.ids.push_back(id(x));
  }
  if (t.ids.size() > kMaxIds) fail(Errc::kInvalidArgument, path, "", "too many token ids");
  return t;
}

TokenIds read_npy_ids(const std::string& path) {
  File f = File::open_read(path);
  const uint64_t size = f.size();
  if (size < 10 || size > (kMaxIds * 8 + (1u << 20))) fail(Errc::kInvalidArgument, path, "", "not a .npy file of token ids (size)");
  std::vector<uint8_t> b(size);
  f.pread_exact(b.data(), size, 0);
  if (std::memcmp(b.data(), "\x93NUMPY", 6) != 0) fail(Errc::kInvalidArgument, path, "", "missing the .npy magic");
  const uint8_t major = b[6];
  uint64_t hlen = 0, hstart = 0;
  if (major == 1) {
    hlen = b[8] | (b[9] << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) fail(Errc::kInvalidArgument, path, "", "truncated .npy header");
    hlen = static_cast<uint64_t>(b[8]) | (static_cast<uint64_t>(b[9]) << 8) | (static_cast<uint64_t>(b[10]) << 16) |
           (static_cast<uint64_t>(b[11]) << 24);
    hstart = 12;
  } else {
    fail(Errc::kInvalidArgument, path, "", ".npy version " + std::to_string(major) + " is not 1, 2 or 3");
  }
  if (hstart + hlen > size) fail(Errc::kInvalidArgument, path, "", ".npy header runs past the end of the file");
  const std::string header(reinterpret_cast<const char*>(b.data() + hstart), hlen);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([<>|=]?)([iu])([48])')")))
    fail(Errc::kInvalidArgument, path, "", ".npy dtype must be int32, int64 or uint32");
  if (m[1] == ">") fail(Errc::kInvalidArgument, path, "", ".npy data is big-endian");
  const bool is_signed = m[2] == "i";
  const unsigned bytes = m[3] == "8" ? 8 : 4;
  if (!is_signed && bytes == 8) fail(Errc::kInvalidArgument, path, "", ".npy dtype must be int32, int64 or uint32");
  if (!std::regex_search(header, std::regex(R"('fortran_order'\s*:\s*False)")))
    fail(Errc::kInvalidArgument, path, "", ".npy data must be in C order");
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(\s*([0-9]+)\s*,?\s*([0-9]*)\s*,?\s*\))")))
    fail(Errc::kInvalidArgument, path, "", ".npy shape must be 1-D or 2-D");
  std::vector<uint64_t> shape = {std::stoull(m[1].str().substr(0, 12))};
  if (m[2].length()) shape.push_back(std::stoull(m[2].str().substr(0, 12)));
  uint64_t n = 1;
  for (uint64_t d : shape) n = d > kMaxIds ? kMaxIds + 1 : n * d;
  if (n > kMaxIds || hstart + hlen + n * bytes != size)
    fail(Errc::kInvalidArgument, path, "", ".npy data size does not match its shape " + shape_to_string(shape));
  return from_elements(path, shape, b.data() + hstart + hlen, bytes, is_signed);
}

}  // namespace

TokenIds parse_id_list(const std::string& text) {
  TokenIds t;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0)
      fail(Errc::kInvalidArgument, "", "", "--ids '" + text + "': each item must be a non-negative integer");
    t.ids.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  t.sequences = 1;
  t.length = t.ids.size();
  return t;
}

TokenIds read_token_ids(const std::string& path) {
  if (ends_with(path, ".safetensors")) return read_safetensors_ids(path);
  if (ends_with(path, ".json")) return read_json_ids(path);
  if (ends_with(path, ".npy")) return read_npy_ids(path);
  fail(Errc::kInvalidArgument, path, "", "token id files are .safetensors, .json or .npy");
}

TokenIds read_token_ids_argument(const std::string& text) {
  struct stat st {};
  if (::stat(text.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return read_token_ids(text);
  return parse_id_list(text);
}

void write_token_ids(const std::string& path, const TokenIds& ids) {
  SmallTensor t{"input_ids", DType::I64, {ids.sequences, ids.length}, std::vector<uint8_t>(ids.ids.size() * 8)};
  for (size_t i = 0; i < ids.ids.size(); ++i)
    for (int b = 0; b < 8; ++b) t.bytes[i * 8 + b] = static_cast<uint8_t>(static_cast<uint64_t>(ids.ids[i]) >> (8 * b));
  write_small_safetensors(path, {t});
}

TokenIds text_token_ids(const tok::Tokenizer& tokenizer, std::string_view text, uint64_t vocab,
                        const std::string& what) {
  std::vector<int32_t> ids = tokenizer.encode(text, /*add_special_tokens=*/true);
  if (ids.empty()) fail(Errc::kInvalidArgument, what, "", "the tokenizer gives no token ids for this text");
  if (ids.size() > kMaxIds) fail(Errc::kInvalidArgument, what, "", "more than " + std::to_string(kMaxIds) + " token ids");
  for (int32_t id : ids)
    if (id < 0 || static_cast<uint64_t>(id) >= vocab)
      fail(Errc::kInvalidArgument, what, "", "the tokenizer gives id " + std::to_string(id) + " (" +
                                                 tokenizer.piece(id) + "), which the model's vocabulary of " +
                                                 std::to_string(vocab) + " does not have");
  TokenIds t{{ids.begin(), ids.end()}, 1, ids.size()};
  return t;
}

std::string token_ids_text(const tok::Tokenizer& tokenizer, std::span<const int64_t> ids) {
  std::vector<int32_t> narrow;
  narrow.reserve(ids.size());
  for (int64_t id : ids)
    if (id >= 0 && id <= INT32_MAX) narrow.push_back(static_cast<int32_t>(id));
  return tokenizer.decode(narrow, /*skip_special_tokens=*/false);
}

}  // namespace ckpt::model
