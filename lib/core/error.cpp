#include "core/error.h"

#include <cerrno>
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

static std::string format_message(Errc code, const std::string& file, const std::string& tensor,
                                  const std::string& rule) {
  std::string msg;
  if (!file.empty()) msg += file + ": ";
  if (!tensor.empty()) msg += "tensor '" + tensor + "': ";
  msg += rule;
  msg += " [";
  msg += errc_name(code);
  msg += "]";
  return msg;
}

Error::Error(Errc code, std::string file, std::string tensor, std::string rule)
    : std::runtime_error(format_message(code, file, tensor, rule)),
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
