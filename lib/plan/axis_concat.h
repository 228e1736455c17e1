// The concatenation of source views along any dimension (torch.cat(pieces, dim)). Along dim 0
// that is a plain ViewProducer; along a later dim every output row interleaves the pieces' rows,
// which this producer gathers run by run without materialising per-row views.
#pragma once

#include "plan/plan.h"

namespace ckpt {

class AxisConcatProducer : public Producer {
 public:
  // All pieces have one dtype (whole bytes per element) and equal shapes except along `dim`.
  AxisConcatProducer(std::vector<SourceView> pieces, size_t dim);
  uint64_t nbytes() const override;
  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override;
  ojson describe() const override;

 private:
  std::vector<SourceView> pieces_;
  size_t dim_;
  std::vector<uint64_t> inner_;        // elements of one outer row, per piece
  std::vector<uint64_t> inner_first_;  // where each piece starts within an output row
  uint64_t row_ = 0, rows_ = 0;        // output row length and outer row count
  unsigned elem_bytes_ = 0;
};

// A producer for torch.cat(pieces, dim): a ViewProducer along dim 0 (or for one piece), else an
// AxisConcatProducer.
std::shared_ptr<Producer> concat_views(std::vector<SourceView> pieces, size_t dim);

}  // namespace ckpt
