// GGUF v3 as llama.cpp reads it (ggml-org/ggml src/gguf.cpp, docs/gguf.md): the metadata
// key/value section, and the container that lays a file out — tensor infos with ne innermost
// first, data aligned to 32 bytes at offsets that are exactly the running sum of the padded
// sizes (gguf.cpp refuses any other offset), zero padding after the header and every tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "formats/container.h"
#include "ops/ggml_blocks.h"

namespace ckpt {

inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint64_t kGgufAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT; general.alignment is not written
inline constexpr size_t kGgufMaxNameBytes = 63;  // GGML_MAX_NAME (64) counts the terminating NUL

// The metadata section, in insertion order. Value types are llama.cpp's strict ones (u32 counts,
// f32 epsilons, i32 token types ...); keys are unique and non-empty, arrays never nested.
class GgufMetadata {
 public:
  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_u16(const std::string& key, uint16_t v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);

  uint64_t count() const { return count_; }
  const std::string& bytes() const { return bytes_; }
  bool has(const std::string& key) const { return keys_.count(key) != 0; }

 private:
  void begin(const std::string& key, uint32_t type);
  std::string bytes_;
  std::set<std::string> keys_;
  uint64_t count_ = 0;
};

// Appends GGUF's string encoding (u64 byte length, the bytes, no NUL).
void gguf_put_string(std::string& out, const std::string& s);

// A GGUF file: `metadata`, and each tensor's ggml type by name (every tensor the plan puts in the
// file must have one). Tensors are written in llama.cpp's loader order (weight_name_comparer in
// src/llama-model-loader.h: file-level tensors first, then by block number, then by name).
std::shared_ptr<const ContainerWriter> gguf_container(GgufMetadata metadata,
                                                      std::map<std::string, ops::GgmlType> types);

}  // namespace ckpt
