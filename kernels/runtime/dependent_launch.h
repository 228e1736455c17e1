// Programmatic dependent launch (sm_90 and later), the device side: how a decode step's kernels
// overlap the gap between one kernel and the next inside the step's CUDA graph.
//
// A kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization (linear_kernels.cu
// launches the decode GEMV so) may start while the kernel before it in the stream still runs:
// once every block of that kernel has called allow_dependent_launch() or exited. It must then call
// wait_for_previous_kernel() before it touches anything the previous kernels write; that waits
// for their completion and for their writes to be visible. The decode GEMV reads only its weights
// (constant during the step) before the wait, so its first loads are in flight while the RMSNorm,
// attention or SiLU kernel before it finishes, instead of after a launch gap.
//
// Both are no-ops below sm_90 and where the kernel was launched without the attribute (the wait
// returns at once: the stream already ordered the kernel after its predecessors).
// https://docs.nvidia.com/cuda/parallel-thread-execution/#parallel-synchronization-and-communication-instructions-griddepcontrol
#pragma once

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

}  // namespace ckpt::cuda
