// Programmatic dependent launch (sm_90 and later), the device side: how a decode step's kernels
// overlap the gap between one kernel and the next inside the step's CUDA graph.
//
// A kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization (launch_dependent:
// every kernel of a dense decode step is launched so) may start while the kernel before it in the
// stream still runs: once every block of that kernel has called allow_dependent_launch() or
// exited. It must then call wait_for_previous_kernel() before it touches anything earlier kernels
// write or read; that waits for the previous kernel's completion and for its writes to be
// visible, and since that kernel waited in turn, for every kernel before it. Each kernel lets its
// successor launch at its start, so the next kernel's blocks are resident when it ends: the gap
// between two kernels of the step's graph is a wait, not a launch. The decode GEMV reads only its
// weights (constant during the step) before the wait, so its first loads are in flight while the
// RMSNorm, attention or SiLU kernel before it finishes.
//
// Both are no-ops below sm_90 and where the kernel was launched without the attribute (the wait
// returns at once: the stream already ordered the kernel after its predecessors).
// https://docs.nvidia.com/cuda/parallel-thread-execution/#parallel-synchronization-and-communication-instructions-griddepcontrol
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace ckpt::cuda {

// Lets the next kernel in the stream, if launched as a programmatic dependent, start its blocks
// (called at the start of the kernels that precede a decode GEMV).
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Waits until the kernels before this one in the stream have completed and their writes are
// visible (a kernel launched as a programmatic dependent, before its first dependent access).
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Launches `kernel` as a programmatic dependent of the kernel before it in `stream` (it must call
// wait_for_previous_kernel() before touching what earlier kernels write or read).
template <class... Params, class... Args>
cudaError_t launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                             cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[1] = {};
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace ckpt::cuda
