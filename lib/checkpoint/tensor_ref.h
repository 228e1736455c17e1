// Where a tensor's bytes are. Opening a checkpoint produces one TensorRef per tensor and reads
// no tensor data; every later step (plans, the executor) works from these.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace ckpt {

class ProducedTensor;  // plan/plan.h

// A strided view of elements in one source file, or (file == kZeros) a run of zero elements, or
// (file == kProduced) of the bytes an earlier step of a pipeline would have written for one
// tensor (`produced`: plan/plan.h; `offset` is then within those bytes). Strides are in
// elements, as torch's; an empty `strides` means row-major contiguous.
struct SourceView {
  static constexpr int kZeros = -1;
  static constexpr int kProduced = -2;
  int file = kZeros;     // index into Checkpoint::files
  uint64_t offset = 0;   // byte offset of element [0, 0, ...] within the file
  DType dtype = DType::U8;
  std::vector<uint64_t> shape;
  std::vector<int64_t> strides;
  std::shared_ptr<const ProducedTensor> produced;  // file == kProduced

  uint64_t numel() const;
  uint64_t nbytes() const;
  // True when the view's elements are consecutive bytes in the file, in row-major order.
  bool is_contiguous() const;
  // The row-major contiguous strides for `shape`.
  static std::vector<int64_t> contiguous_strides(const std::vector<uint64_t>& shape);
  // Rows [begin, end) of dimension 0 (a plain narrowing: offset moves, strides kept).
  SourceView narrow(size_t dim, uint64_t begin, uint64_t length) const;
  std::vector<int64_t> effective_strides() const;
};

struct TensorRef {
  std::string name;
  SourceView view;  // dtype and shape of the tensor are view.dtype / view.shape
  DType dtype() const { return view.dtype; }
  const std::vector<uint64_t>& shape() const { return view.shape; }
  uint64_t nbytes() const { return view.nbytes(); }
};

}  // namespace ckpt
