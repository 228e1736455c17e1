// The CPU reference forward (cpu_forward.h) as a StepForward: activations are host doubles, the
// comparison's sums taken by diff_activations.
#pragma once

#include <cstdint>

#include "core/parallel.h"
#include "model/model_weights.h"
#include "model/step_forward.h"

namespace ckpt::model {

// src and dst with KV caches of `capacity` tokens a sequence (the ids and the greedy
// continuation), the isolated forward of dst with `tokens` (it runs the ids only).
ComparedForwards cpu_compared_forwards(const Model& src, const Model& dst, uint64_t batch, uint64_t capacity,
                                       uint64_t tokens, const Workers& workers);

}  // namespace ckpt::model
