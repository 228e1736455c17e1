// An independent GGUF v3 reader for tests, written from ggml-org/ggml docs/gguf.md and the checks
// of src/gguf.cpp (strict running offsets, alignment 32): what a GGUF file written by ckpt holds,
// to compare with what the test expects. Throws std::runtime_error on anything malformed.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ckpt::test {

struct GgufKv {
  uint32_t type = 0;       // gguf_type: 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array ...
  uint32_t elem_type = 0;  // arrays
  uint64_t count = 0;      // arrays
  std::vector<uint8_t> raw;          // scalar bytes
  std::string str;                   // strings
  std::vector<std::string> strings;  // string arrays
  std::vector<uint8_t> array_raw;    // numeric arrays, packed
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // innermost first
  uint32_t type = 0;
  uint64_t offset = 0;      // relative to the data section
};

struct GgufFile {
  uint32_t version = 0;
  std::vector<std::string> key_order;
  std::map<std::string, GgufKv> kv;
  std::vector<GgufTensorInfo> tensors;
  uint64_t data_start = 0;
  uint64_t file_size = 0;
  uint32_t u32(const std::string& key) const;
  float f32(const std::string& key) const;
  const GgufTensorInfo& tensor(const std::string& name) const;
  const GgufKv& kv_at(const std::string& key) const {
    auto it = kv.find(key);
    if (it == kv.end()) throw std::runtime_error("gguf: no key " + key);
    return it->second;
  }
};

// Reads and checks a file: magic, every tensor's offset equal to the running sum of 32-byte-padded
// sizes, data inside the file, zero padding after the tensor infos.
GgufFile read_gguf(const std::string& path);
// The byte size of a tensor of ggml type `type` and shape `ne` (the types ckpt writes).
uint64_t ggml_tensor_bytes(uint32_t type, const std::vector<int64_t>& ne);

}  // namespace ckpt::test
