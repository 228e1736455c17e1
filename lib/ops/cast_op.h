// The cast as a plan ElementOp: the executor gathers a chunk of source elements and this op
// converts them with the fastest CPU path (ops/cast.h). The CUDA twin is kernels/cast_op_cuda.h.
#pragma once

#include <memory>

#include "plan/plan.h"

namespace ckpt::ops {

class CastOp : public ElementOp {
 public:
  CastOp(DType in, DType out);  // a pair ops::cast supports
  DType in_dtype() const override { return in_; }
  DType out_dtype() const override { return out_; }
  void apply(const uint8_t* in, uint8_t* out, uint64_t n) const override;
  std::string name() const override;

 private:
  DType in_, out_;
};

// "cast BF16->F16": the op name both devices use in printed plans.
std::string cast_op_name(DType in, DType out);

}  // namespace ckpt::ops
