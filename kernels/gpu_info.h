// Whether a CUDA GPU is usable here, and what it is. GPU tests and `validate` ask this first so
// that a machine without a GPU gets a clear message instead of a CUDA error.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace ckpt::cuda {

// Number of usable CUDA devices (0 when there is no driver or no GPU).
int device_count();
// What `--device cuda` asks first: fails with one line (Errc::kUnsupported) when no CUDA GPU is
// usable, before any planning.
void require_device();
// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" for device `index`.
std::string device_description(int index);
// Streaming multiprocessors of the current device (0 when it cannot be asked): what kernels that
// size their grid to the machine (the Marlin GEMM's K split) take.
int current_sm_count();

// The current device's HBM read bandwidth in GB/s (1e9 bytes/s): the median of `reps` timed runs
// (after one warm-up) of a kernel reading `bytes` (a fresh buffer, far larger than L2) with
// 16-byte loads. The floor of a memory-bound step is the bytes it must read divided by this.
// Errors (no device, out of memory) are returned, the value then untouched.
cudaError_t measure_read_gbps(uint64_t bytes, int reps, double* gbps);

}  // namespace ckpt::cuda
