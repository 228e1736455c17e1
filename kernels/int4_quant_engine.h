// The CUDA Int4Engine behind `ckpt quantize --int4 --device cuda`: a cached weight's strips
// (ops/int4_producers.h) go through the thread's StagingPipeline (staging_pipeline.h: pinned
// memory, several strips in flight) and Int4QuantKernel (int4_quant.h), which writes them as the
// cache keeps them: K-packed words and each group's scale and zero, whatever the format (the
// producers lay them out, as on the CPU). Same bytes as the CPU path.
//
// Strips the kernel does not take (K % 8 != 0, which compressed-tensors allows, or a group size
// that is not a multiple of 8) are quantized by the CPU engine: the same bytes.
#pragma once

#include <memory>

#include "ops/int4_producers.h"

namespace ckpt {

// Fails with a clear error when no CUDA GPU is usable.
std::shared_ptr<const Int4Engine> cuda_int4_engine();

}  // namespace ckpt
