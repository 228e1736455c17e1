#include "checkpoint/tensor_ref.h"

#include <stdexcept>

namespace ckpt {

uint64_t SourceView::numel() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

uint64_t SourceView::nbytes() const { return numel() * dtype_bits(dtype) / 8; }

std::vector<int64_t> SourceView::contiguous_strides(const std::vector<uint64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= static_cast<int64_t>(shape[i]);
  }
  return s;
}

std::vector<int64_t> SourceView::effective_strides() const {
  return strides.empty() ? contiguous_strides(shape) : strides;
}

bool SourceView::is_contiguous() const {
  if (strides.empty() || numel() <= 1) return true;
  // Dimensions of size 1 may carry any stride (torch leaves them arbitrary).
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (strides[i] != expected) return false;
    expected *= static_cast<int64_t>(shape[i]);
  }
  return true;
}

SourceView SourceView::narrow(size_t dim, uint64_t begin, uint64_t length) const {
  if (dim >= shape.size() || begin + length > shape[dim]) throw std::out_of_range("SourceView::narrow");
  SourceView v = *this;
  v.strides = effective_strides();
  if (file != kZeros) v.offset += begin * static_cast<uint64_t>(v.strides[dim]) * dtype_bits(dtype) / 8;
  v.shape[dim] = length;
  return v;
}

}  // namespace ckpt
