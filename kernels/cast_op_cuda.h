// The CUDA twin of ops::CastOp behind `ckpt cast --device cuda`: each chunk the executor hands
// over is copied to the GPU, converted by kernels/cast.cu and copied back. Same bytes as the CPU.
#pragma once

#include <memory>

#include "plan/plan.h"

namespace ckpt::cuda {

// The op for one pair (a pair ops::CastOp supports).
std::shared_ptr<const ElementOp> make_cast_op(DType in, DType out);

}  // namespace ckpt::cuda
