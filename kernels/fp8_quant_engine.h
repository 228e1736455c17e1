// The CUDA Fp8Engine behind `ckpt quantize --device cuda`: a weight's pieces (the amax pass's
// stripes, the codes' 1 Mi-element error blocks) go through the thread's StagingPipeline
// (staging_pipeline.h: pinned memory, several pieces in flight) and kernels/fp8_quant.cu. Same
// bytes as the CPU path.
#pragma once

#include <memory>

#include "ops/fp8_producers.h"

namespace ckpt {

// Fails with a clear error when no CUDA GPU is usable.
std::shared_ptr<const Fp8Engine> cuda_fp8_engine();

}  // namespace ckpt
