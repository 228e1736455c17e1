// The CUDA forward (gpu_forward.h) as a model::StepForward, so that compare_models
// (lib/model/compare.h) runs validate --against on the GPU with the same comparison code as on the
// CPU: hidden states and recorded Linear outputs stay on the device (float32), diff() reduces two
// of them there (compare_kernels.h) and only a few sums a row come back; logits come back a chunk
// of rows at a time.
//
// The destination's isolated forward (its layers on the source's hidden states) shares the
// destination's GpuForward — its weights and its KV cache — instead of uploading the model a
// second time: compare_models runs it before the destination's own call of each layer, which
// writes the same cache positions again, and the comparison's step starts at position 0, so no
// attention reads an isolated key (the reference gives the isolated forward a cache of its own;
// both compute the same).
#pragma once

#include <cstdint>
#include <string>

#include "model/model_weights.h"
#include "model/step_forward.h"

namespace ckpt::cuda {

// The forwards of a comparison on the current device, KV caches of `capacity` tokens for `batch`
// sequences. Throws (Errc::kIo, the CUDA error) when they cannot be built, e.g. out of memory.
model::ComparedForwards gpu_compared_forwards(const model::Model& src, const model::Model& dst, uint64_t batch,
                                              uint64_t capacity);

// The relative error two float32 computations of the same Linear may show (the summation order
// of a resharded or differently tiled product): ~1e-6 at the widths of an 8B model, bounded with
// a margin; a real fault (a swapped row, a wrong scale) is orders of magnitude above it.
constexpr double kFloat32LinearErrorFloor = 1e-4;

}  // namespace ckpt::cuda
