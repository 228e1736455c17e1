// Reading one tensor's raw bytes out of a safetensors file (the reference vectors in
// testdata/numerics), through the library's strict reader.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace ckpt::test {

struct TensorBytes {
  DType dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;

  // The elements reinterpreted as T (T's size must be the dtype's).
  template <typename T>
  std::vector<T> as() const {
    std::vector<T> v(bytes.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
    return v;
  }
};

// Throws when the file or the tensor is missing.
TensorBytes load_tensor_bytes(const std::string& safetensors_path, const std::string& name);

}  // namespace ckpt::test
