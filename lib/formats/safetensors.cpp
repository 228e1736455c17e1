#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "formats/strict_json.h"

namespace ckpt {

namespace {

// Validates one entry's JSON shape and returns it; rules of the serde schema (§1.2).
SafetensorsTensor parse_entry(const std::string& file, const std::string& name, const ojson& v) {
  if (!v.is_object()) fail(Errc::kBadFieldType, file, name, "entry must be a JSON object");
  auto field = [&](const char* key) -> const ojson& {
    auto it = v.find(key);
    if (it == v.end()) fail(Errc::kMissingField, file, name, std::string("missing field `") + key + "`");
    return *it;
  };
  SafetensorsTensor t;
  t.name = name;
  const ojson& dt = field("dtype");
  if (!dt.is_string()) fail(Errc::kBadFieldType, file, name, "`dtype` must be a string, got " + json_excerpt(dt));
  auto parsed = dtype_from_name(dt.get<std::string>());
  if (!parsed) fail(Errc::kUnknownDtype, file, name, "unknown dtype " + json_excerpt(dt));
  t.dtype = *parsed;
  const ojson& shape = field("shape");
  if (!shape.is_array()) fail(Errc::kBadFieldType, file, name, "`shape` must be an array, got " + json_excerpt(shape));
  for (const auto& d : shape) {
    if (!d.is_number_unsigned())
      fail(Errc::kBadFieldType, file, name, "shape dimension must be a non-negative integer, got " + json_excerpt(d));
    t.shape.push_back(d.get<uint64_t>());
  }
  const ojson& offs = field("data_offsets");
  if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
    fail(Errc::kBadFieldType, file, name, "`data_offsets` must be two non-negative integers, got " + json_excerpt(offs));
  t.begin = offs[0].get<uint64_t>();
  t.end = offs[1].get<uint64_t>();
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const std::string& file, std::string_view header,
                                           uint64_t file_size) {
  SafetensorsHeader h;
  h.header_len = header.size();
  if (!is_valid_utf8(header)) fail(Errc::kHeaderNotUtf8, file, "", "header is not valid UTF-8");
  StrictJsonResult parsed = parse_strict_json(header);
  if (parsed.duplicate_key)
    fail(Errc::kDuplicateKey, file, parsed.duplicate, "key appears more than once in the header");
  if (!parsed.ok) fail(Errc::kHeaderBadJson, file, "", "header is not valid JSON: " + parsed.error);
  const ojson& root = parsed.value;
  if (!root.is_object())
    fail(Errc::kHeaderNotObject, file, "", std::string("header must be a JSON object, got ") + root.type_name());

  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_null()) continue;
      if (!it->is_object()) fail(Errc::kMetadataNotStringMap, file, "", "__metadata__ must map strings to strings");
      Metadata md;
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail(Errc::kMetadataNotStringMap, file, "",
               "__metadata__ value of " + quote(m.key()) + " must be a string, got " + json_excerpt(*m));
        md.emplace_back(m.key(), m->get<std::string>());
      }
      h.metadata = std::move(md);
      continue;
    }
    h.tensors.push_back(parse_entry(file, it.key(), *it));
  }

  // Reference rule: sorted by (begin, end), the ranges must tile the buffer from 0. Ties between
  // zero-size tensors are broken by name so the order is deterministic.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t start = 0;
  for (const auto& t : h.tensors) {
    if (t.begin != start || t.end < t.begin)
      fail(Errc::kInvalidOffset, file, t.name,
           "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
               "] do not continue the previous tensor's end " + std::to_string(start) +
               " (hole, overlap or bad order)");
    auto numel = checked_numel(t.shape);
    uint64_t nbits;
    if (!numel || __builtin_mul_overflow(*numel, uint64_t{dtype_bits(t.dtype)}, &nbits))
      fail(Errc::kValidationOverflow, file, t.name, "shape " + shape_to_string(t.shape) + " overflows");
    if (nbits % 8 != 0)
      fail(Errc::kMisalignedSlice, file, t.name,
           std::string(dtype_name(t.dtype)) + " shape " + shape_to_string(t.shape) +
               " is not a whole number of bytes");
    if (t.end - t.begin != nbits / 8)
      fail(Errc::kTensorInvalidInfo, file, t.name,
           "byte range of " + std::to_string(t.end - t.begin) + " bytes does not match " +
               std::string(dtype_name(t.dtype)) + " " + shape_to_string(t.shape) + " = " +
               std::to_string(nbits / 8) + " bytes");
    start = t.end;
  }
  uint64_t expected;
  if (__builtin_add_overflow(8 + h.header_len, start, &expected) || expected != file_size)
    fail(Errc::kIncompleteBuffer, file, "",
         "file is " + std::to_string(file_size) + " bytes but the header describes " +
             std::to_string(8 + h.header_len + start) + (file_size > expected ? " (trailing bytes)" : " (truncated)"));
  return h;
}

SafetensorsHeader read_safetensors_header(const File& f) { return read_safetensors_header(FileSource(f)); }

SafetensorsHeader read_safetensors_header(const ByteSource& f) {
  uint64_t size = f.size();
  if (size < 8) fail(Errc::kHeaderTooSmall, f.name(), "", "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint8_t len_bytes[8];
  f.read(0, 8, len_bytes);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeaderSize)
    fail(Errc::kHeaderTooLarge, f.name(), "", "header length " + std::to_string(n) + " exceeds the limit of 100000000");
  if (8 + n > size)
    fail(Errc::kInvalidHeaderLength, f.name(), "",
         "header length " + std::to_string(n) + " reaches past the end of the " + std::to_string(size) + "-byte file");
  std::string header(n, '\0');
  if (n) f.read(8, n, header.data());
  return parse_safetensors_header(f.name(), header, size);
}

void check_writable_name(const std::string& file_label, const std::string& name) {
  if (name == "__metadata__")
    fail(Errc::kBadTensorName, file_label, name, "a tensor may not be named __metadata__ (readers could not load the file)");
}

std::string json_escape(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case 0x08: out += "\\b"; break;
      case 0x09: out += "\\t"; break;
      case 0x0A: out += "\\n"; break;
      case 0x0C: out += "\\f"; break;
      case 0x0D: out += "\\r"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  return out;
}

std::string build_safetensors_header(const std::optional<Metadata>& metadata,
                                     std::span<const HeaderEntry> entries) {
  std::string j = "{";
  bool first = true;
  if (metadata) {
    j += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata->size(); ++i) {
      if (i) j += ',';
      j += '"' + json_escape((*metadata)[i].first) + "\":\"" + json_escape((*metadata)[i].second) + '"';
    }
    j += '}';
    first = false;
  }
  uint64_t off = 0;
  for (const auto& e : entries) {
    if (!first) j += ',';
    first = false;
    j += '"' + json_escape(e.name) + "\":{\"dtype\":\"" + std::string(dtype_name(e.dtype)) + "\",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) {
      if (i) j += ',';
      j += std::to_string(e.shape[i]);
    }
    j += "],\"data_offsets\":[" + std::to_string(off) + ',' + std::to_string(off + e.nbytes) + "]}";
    off += e.nbytes;
  }
  j += '}';
  j.append((8 - j.size() % 8) % 8, ' ');
  return j;
}

}  // namespace ckpt
