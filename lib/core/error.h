// One error type for the whole library. Every failure a user can cause names the file, the tensor
// (when there is one) and the rule broken, and carries a stable code so tests can tell failures
// apart without matching message text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ckpt {

enum class Errc {
  // safetensors reader: one per rule of the reference reader (safetensors tensor.rs), plus ours.
  kHeaderTooSmall,
  kHeaderTooLarge,
  kInvalidHeaderLength,
  kHeaderNotUtf8,
  kHeaderBadJson,
  kHeaderNotObject,
  kDuplicateKey,
  kMetadataNotStringMap,
  kMissingField,
  kBadFieldType,
  kUnknownDtype,
  kInvalidOffset,
  kValidationOverflow,
  kMisalignedSlice,
  kTensorInvalidInfo,
  kIncompleteBuffer,
  // Hugging Face layout.
  kIndexInvalid,
  kIndexMismatch,
  kNoCheckpoint,
  // Torch .bin container and pickle.
  kZipInvalid,
  kZipUnsupported,
  kZipCrcMismatch,
  kPickleRefused,
  kPickleInvalid,
  kTorchInvalid,
  kExpandedView,  // views that repeat storage elements far past the storages' size
  // Packed container (formats/pack_format.h): its structure, and a frame that does not decode to
  // its declared length and digest.
  kPackInvalid,
  kPackCorrupt,
  // Writing.
  kBadTensorName,
  kDestinationExists,
  kDestinationInSource,
  kUnsupported,
  kInvalidArgument,
  kIo,
  kInterrupted,
  kCheckFailed,
  // Tokenizer files (lib/tokenizer).
  kTokenizerInvalid,
  kTokenizerUnsupported,
};

// Untrusted text (tensor, global, record and key names, JSON values: anything a file controls) made
// safe for one terminal line: C0 controls (NUL, ESC, CR, LF, ...), DEL, C1 controls, bidirectional
// and line-separator characters, and bytes that are not UTF-8 become visible escapes (\x1b,
// \u{202e}); text longer than `max_bytes` is cut at a character boundary with the count of bytes
// left out. Every error line goes through it (error_line), so a file can neither forge a line
// on the terminal nor cut the [code] off with a NUL nor print 20 MB.
std::string printable(std::string_view text, size_t max_bytes);
// A file-controlled string quoted inside a rule: 'text', cut shorter than a whole line's budget.
inline constexpr size_t kQuotedBytes = 160;
std::string quote(std::string_view text, size_t max_bytes = kQuotedBytes);
// The one error line, "FILE: tensor 'NAME': RULE", every part through printable(): Error::what()
// (with " [code]" after it) and validate's failure lines.
std::string error_line(std::string_view file, std::string_view tensor, std::string_view rule);
// One UTF-8 character at the start of `s`: its length (1-4), with its code point in *cp, or 0 when
// it is not well-formed UTF-8 (overlong, surrogate, above U+10FFFF, truncated).
size_t utf8_char(std::string_view s, uint32_t* cp);

// The symbolic name of a code ("invalid_offset"), printed in brackets so scripts can match it.
const char* errc_name(Errc code);

class Error : public std::runtime_error {
 public:
  Error(Errc code, std::string file, std::string tensor, std::string rule);
  Errc code() const { return code_; }
  const std::string& file() const { return file_; }
  const std::string& tensor() const { return tensor_; }
  const std::string& rule() const { return rule_; }

 private:
  Errc code_;
  std::string file_, tensor_, rule_;
};

// Shorthand for the common case of an error about a file (and optionally one tensor in it).
[[noreturn]] void fail(Errc code, const std::string& file, const std::string& tensor,
                       const std::string& rule);
// An I/O failure: the message carries strerror(errno) of the failed call.
[[noreturn]] void fail_errno(const std::string& file, const std::string& what);

}  // namespace ckpt
