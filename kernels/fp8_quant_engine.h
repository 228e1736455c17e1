// The CUDA Fp8Engine behind `ckpt quantize --device cuda`: the producers' chunks are copied to the
// GPU, run through kernels/fp8_quant.cu and copied back. Same bytes as the CPU path.
#pragma once

#include <memory>

#include "ops/fp8_producers.h"

namespace ckpt {

// Fails with a clear error when no CUDA GPU is usable.
std::shared_ptr<const Fp8Engine> cuda_fp8_engine();

}  // namespace ckpt
