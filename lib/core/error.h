// One error type for the whole library. Every failure a user can cause names the file, the tensor
// (when there is one) and the rule broken, and carries a stable code so tests can tell failures
// apart without matching message text.
#pragma once

#include <stdexcept>
#include <string>

namespace ckpt {

enum class Errc {
  // safetensors reader, one per rule of the reference reader (specs/formats.md §1.4) plus ours.
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
