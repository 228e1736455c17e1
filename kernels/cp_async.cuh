// Ampere-style asynchronous copies global -> shared memory (PTX ISA, "cp.async"; sm_80 and later):
// each thread moves 16 bytes without staging them in registers, so a warp can keep several
// kilobytes of loads in flight per stage of a shared-memory ring and spend its registers on math.
// Copies of one thread are grouped by commit_group and waited for by wait_group N ("all but the
// N most recent groups have landed"); a __syncwarp() (or __syncthreads()) after the wait makes
// other threads' copies visible.
#pragma once

#include <cstdint>

namespace ckpt::cuda {

__device__ __forceinline__ uint32_t shared_address(const void* smem) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(smem));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(smem)), "l"(gmem));
}
// The same copy where `valid` is false writes 16 zero bytes and reads nothing (src-size 0), so a
// tile's edge needs no branch around the copy and leaves defined bytes behind.
__device__ __forceinline__ void cp_async16_or_zero(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(smem)), "l"(gmem),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace ckpt::cuda
