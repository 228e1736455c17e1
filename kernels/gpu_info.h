// Whether a CUDA GPU is usable here, and what it is. GPU tests and `validate` ask this first so
// that a machine without a GPU gets a clear message instead of a CUDA error.
#pragma once

#include <string>

namespace ckpt::cuda {

// Number of usable CUDA devices (0 when there is no driver or no GPU).
int device_count();
// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" for device `index`.
std::string device_description(int index);

}  // namespace ckpt::cuda
