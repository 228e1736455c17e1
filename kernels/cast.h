// The CUDA cast kernel's launcher (kernels/cast.cu): the per-element math is ops/float_convert.h,
// the same functions the CPU reference runs, so both give the same bytes. C++17-clean.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/float_convert.h"

namespace ckpt::cuda {

// Converts n elements from device memory `src` (format `in`) to `dst` (format `out`, not F64) on
// `stream`. Vector loads are used when both pointers are 16-byte aligned. Returns the launch status
// (cudaErrorInvalidValue for an unsupported pair).
cudaError_t launch_cast(ops::FloatFormat in, ops::FloatFormat out, const void* src, void* dst, uint64_t n,
                        cudaStream_t stream);

}  // namespace ckpt::cuda
