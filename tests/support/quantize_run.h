// Quantizes a checkpoint through the planner and the executor, as `ckpt quantize` does (for tests
// that compare two engines' files).
#pragma once

#include <string>

#include "commands/quantize.h"

namespace ckpt::test {

// plan_quantize(open_checkpoint(src), options), executed into `dst` on `threads` threads.
void quantize_into(const std::string& src, const QuantizeOptions& options, const std::string& dst, int threads = 4);

}  // namespace ckpt::test
