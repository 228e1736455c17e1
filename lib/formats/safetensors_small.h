// Small safetensors files held whole in memory: token ids, logits, reports' tensors. Written
// with the layout of the safetensors container (the reference writer's bytes) into a temporary
// sibling that is renamed into place; read back through the strict header parser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace ckpt {

struct SmallTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;  // little-endian elements, row-major
};

// Writes `tensors` (in the reference writer's order) to `path` atomically.
void write_small_safetensors(const std::string& path, std::vector<SmallTensor> tensors);

// Every tensor of a safetensors file (refuses files over `max_bytes`).
std::vector<SmallTensor> read_small_safetensors(const std::string& path, uint64_t max_bytes = 1ull << 32);

}  // namespace ckpt
