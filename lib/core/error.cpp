#include "core/error.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ckpt {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::kHeaderTooSmall: return "header_too_small";
    case Errc::kHeaderTooLarge: return "header_too_large";
    case Errc::kInvalidHeaderLength: return "invalid_header_length";
    case Errc::kHeaderNotUtf8: return "header_not_utf8";
    case Errc::kHeaderBadJson: return "header_bad_json";
    case Errc::kHeaderNotObject: return "header_not_object";
    case Errc::kDuplicateKey: return "duplicate_key";
    case Errc::kMetadataNotStringMap: return "metadata_not_string_map";
    case Errc::kMissingField: return "missing_field";
    case Errc::kBadFieldType: return "bad_field_type";
    case Errc::kUnknownDtype: return "unknown_dtype";
    case Errc::kInvalidOffset: return "invalid_offset";
    case Errc::kValidationOverflow: return "validation_overflow";
    case Errc::kMisalignedSlice: return "misaligned_slice";
    case Errc::kTensorInvalidInfo: return "tensor_invalid_info";
    case Errc::kIncompleteBuffer: return "incomplete_buffer";
    case Errc::kIndexInvalid: return "index_invalid";
    case Errc::kIndexMismatch: return "index_mismatch";
    case Errc::kNoCheckpoint: return "no_checkpoint";
    case Errc::kZipInvalid: return "zip_invalid";
    case Errc::kZipUnsupported: return "zip_unsupported";
    case Errc::kZipCrcMismatch: return "zip_crc_mismatch";
    case Errc::kPickleRefused: return "pickle_refused";
    case Errc::kPickleInvalid: return "pickle_invalid";
    case Errc::kTorchInvalid: return "torch_invalid";
    case Errc::kExpandedView: return "expanded_view";
    case Errc::kPackInvalid: return "pack_invalid";
    case Errc::kPackCorrupt: return "pack_corrupt";
    case Errc::kBadTensorName: return "bad_tensor_name";
    case Errc::kDestinationExists: return "destination_exists";
    case Errc::kDestinationInSource: return "destination_in_source";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kIo: return "io";
    case Errc::kInterrupted: return "interrupted";
    case Errc::kCheckFailed: return "check_failed";
    case Errc::kTokenizerInvalid: return "tokenizer_invalid";
    case Errc::kTokenizerUnsupported: return "tokenizer_unsupported";
  }
  return "unknown";
}

size_t utf8_char(std::string_view s, uint32_t* cp) {
  if (s.empty()) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07;
  else return 0;
  if (s.size() < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[k] & 0x3F);
  }
  if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF))) return 0;
  if (v >= 0xD800 && v <= 0xDFFF) return 0;
  *cp = v;
  return len;
}

namespace {

// Characters that move the cursor, start a terminal control sequence or reorder what is shown
// (the "Trojan Source" bidi controls, CVE-2021-42574).
bool is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
         (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

// Limits for the parts of one error line.
constexpr size_t kFileBytes = 1024, kTensorBytes = 256, kRuleBytes = 2048;

}  // namespace

std::string printable(std::string_view s, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(s.size(), max_bytes) + 16);
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = 0;
    size_t len = utf8_char(s.substr(i), &cp);
    char piece[16];
    size_t n;
    if (len == 0) {  // a byte that is not UTF-8
      len = 1;
      n = static_cast<size_t>(std::snprintf(piece, sizeof piece, "\\x%02x", static_cast<unsigned char>(s[i])));
    } else if (is_control(cp)) {
      n = static_cast<size_t>(cp < 0x80 ? std::snprintf(piece, sizeof piece, "\\x%02x", cp)
                                        : std::snprintf(piece, sizeof piece, "\\u{%04x}", cp));
    } else {
      std::memcpy(piece, s.data() + i, len);
      n = len;
    }
    if (out.size() + n > max_bytes) {
      out += "...(" + std::to_string(s.size() - i) + " more bytes)";
      return out;
    }
    out.append(piece, n);
    i += len;
  }
  return out;
}

std::string quote(std::string_view text, size_t max_bytes) { return "'" + printable(text, max_bytes) + "'"; }

std::string error_line(std::string_view file, std::string_view tensor, std::string_view rule) {
  std::string line;
  if (!file.empty()) line += printable(file, kFileBytes) + ": ";
  if (!tensor.empty()) line += "tensor " + quote(tensor, kTensorBytes) + ": ";
  return line + printable(rule, kRuleBytes);
}

Error::Error(Errc code, std::string file, std::string tensor, std::string rule)
    : std::runtime_error(error_line(file, tensor, rule) + " [" + errc_name(code) + "]"),
      code_(code),
      file_(std::move(file)),
      tensor_(std::move(tensor)),
      rule_(std::move(rule)) {}

void fail(Errc code, const std::string& file, const std::string& tensor, const std::string& rule) {
  throw Error(code, file, tensor, rule);
}

void fail_errno(const std::string& file, const std::string& what) {
  int e = errno;
  throw Error(Errc::kIo, file, "", what + ": " + std::strerror(e));
}

}  // namespace ckpt
