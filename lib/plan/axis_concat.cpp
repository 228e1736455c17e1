#include "plan/axis_concat.h"

#include <algorithm>
#include <stdexcept>

namespace ckpt {

AxisConcatProducer::AxisConcatProducer(std::vector<SourceView> pieces, size_t dim)
    : pieces_(std::move(pieces)), dim_(dim) {
  if (pieces_.empty()) throw std::logic_error("AxisConcatProducer: no pieces");
  const SourceView& first = pieces_[0];
  if (dim_ >= first.shape.size() || dtype_bits(first.dtype) % 8 != 0)
    throw std::logic_error("AxisConcatProducer: bad dim or sub-byte dtype");
  elem_bytes_ = dtype_bits(first.dtype) / 8;
  rows_ = 1;
  for (size_t d = 0; d < dim_; ++d) rows_ *= first.shape[d];
  for (const auto& p : pieces_) {
    if (p.dtype != first.dtype || p.shape.size() != first.shape.size())
      throw std::logic_error("AxisConcatProducer: pieces differ in dtype or rank");
    uint64_t inner = 1;
    for (size_t d = 0; d < p.shape.size(); ++d) {
      if (d != dim_ && p.shape[d] != first.shape[d]) throw std::logic_error("AxisConcatProducer: shapes differ");
      if (d >= dim_) inner *= p.shape[d];
    }
    inner_first_.push_back(row_);
    inner_.push_back(inner);
    row_ += inner;
  }
}

uint64_t AxisConcatProducer::nbytes() const { return rows_ * row_ * elem_bytes_; }

void AxisConcatProducer::produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const {
  uint64_t e = begin / elem_bytes_;
  const uint64_t end = e + n / elem_bytes_;
  while (e < end) {
    const uint64_t outer = e / row_, within = e % row_;
    const size_t p = std::upper_bound(inner_first_.begin(), inner_first_.end(), within) - inner_first_.begin() - 1;
    const uint64_t local = within - inner_first_[p];
    const uint64_t k = std::min(end - e, inner_[p] - local);
    // Element `local` of outer row `outer` of piece p is its row-major element outer*inner + local.
    src.gather(pieces_[p], outer * inner_[p] + local, k, out);
    out += k * elem_bytes_;
    e += k;
  }
}

ojson AxisConcatProducer::describe() const {
  ojson d = ojson::object();
  d["op"] = "concat";
  d["dim"] = dim_;
  ojson ps = ojson::array();
  for (const auto& p : pieces_) ps.push_back(describe_view(p));
  d["pieces"] = ps;
  return d;
}

std::shared_ptr<Producer> concat_views(std::vector<SourceView> pieces, size_t dim) {
  if (dim == 0 || pieces.size() == 1) return std::make_shared<ViewProducer>(std::move(pieces));
  return std::make_shared<AxisConcatProducer>(std::move(pieces), dim);
}

}  // namespace ckpt
