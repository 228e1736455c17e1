// safetensors: a strict reader that enforces every rule of the reference implementation
// (huggingface/safetensors tensor.rs: read_metadata, Metadata::validate), refuses duplicate keys, and a
// writer whose header bytes equal what the reference writer produces for the same tensors.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/file_io.h"
#include "formats/byte_source.h"

namespace ckpt {

inline constexpr uint64_t kMaxHeaderSize = 100'000'000;  // decimal, as the reference

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct SafetensorsTensor {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data buffer (after the header)
};

struct SafetensorsHeader {
  uint64_t header_len = 0;            // N: the JSON's byte length, padding included
  std::optional<Metadata> metadata;   // absent when the key is missing or null
  std::vector<SafetensorsTensor> tensors;  // in data order
  uint64_t data_start() const { return 8 + header_len; }
};

// Validates a header. `file_label` names the file in errors; `file_size` is the whole file's.
SafetensorsHeader parse_safetensors_header(const std::string& file_label, std::string_view header,
                                           uint64_t file_size);
// Reads and validates the header of an open file (reads 8 + N bytes, never tensor data).
SafetensorsHeader read_safetensors_header(const File& f);
// The same from any byte source (a file inside a packed checkpoint).
SafetensorsHeader read_safetensors_header(const ByteSource& f);

// --- writer ---------------------------------------------------------------------------------
struct HeaderEntry {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  uint64_t nbytes = 0;
};

// Refuses names the reference would write into an unreadable file (`__metadata__`).
void check_writable_name(const std::string& file_label, const std::string& name);
// The padded JSON header (without the 8-byte length prefix) for entries laid out back to back in
// the given order. Its length is a multiple of 8.
std::string build_safetensors_header(const std::optional<Metadata>& metadata,
                                     std::span<const HeaderEntry> entries);
// serde_json's string escaping, which the reference writer uses.
std::string json_escape(std::string_view s);

}  // namespace ckpt
