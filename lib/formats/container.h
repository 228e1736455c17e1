// The output container seam: how the bytes of one output file are arranged. A container decides
// the header bytes, the order the tensors are written in, their alignment and their final offsets;
// the plan and the one executor do the rest (header first, tensor data produced in parallel and
// written at its final offset, digests, manifest, atomic rename). Implementations: safetensors
// (formats/safetensors_container.cpp) and GGUF (formats/gguf.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "formats/safetensors.h"

namespace ckpt {

// One tensor as the plan hands it to a container: the producer will write exactly `nbytes`.
struct ContainerTensor {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  uint64_t nbytes = 0;
};

struct ContainerLayout {
  std::string head;               // file bytes [0, head.size()), written before any tensor data
  std::vector<size_t> order;      // write order: indices into the tensors given to lay_out()
  std::vector<uint64_t> offsets;  // absolute file offset of each tensor, in write order
  uint64_t size = 0;              // file size; bytes that are neither head nor tensor data are zero
};

class ContainerWriter {
 public:
  virtual ~ContainerWriter() = default;
  // "safetensors", "gguf": the printed plan's name for the format.
  virtual std::string_view format() const = 0;
  // Checks the tensors against the format's rules (names, element types, byte sizes) and lays the
  // file out. `file_label` names the file in errors.
  virtual ContainerLayout lay_out(const std::string& file_label, std::span<const ContainerTensor> tensors) const = 0;
  // The tensor's element type as the file records it ("BF16", "Q4_K"), for the printed plan.
  virtual std::string type_name(const ContainerTensor& t) const = 0;
};

// safetensors as the reference writer lays it out (huggingface/safetensors
// safetensors/src/tensor.rs `prepare`): tensors sorted by dtype (descending enum position) then
// name, back to back after the u64 length and the space-padded JSON header.
std::shared_ptr<const ContainerWriter> safetensors_container(std::optional<Metadata> metadata = std::nullopt);

}  // namespace ckpt
