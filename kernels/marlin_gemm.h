// The runtime's W4A16 GEMM on vLLM's Marlin layout (issue 14): C[m][n] = sum_k A[m][k] W[k][n]
// with A and C in f16 or bf16, W 4-bit codes in Marlin tiles (lib/ops/marlin_layout.h) dequantized
// in registers as (q - zero) * scale, products on the tensor cores (mma.m16n8k16, float32
// accumulation). It reads exactly what `ckpt marlin` writes and vLLM's gptq_marlin_gemm reads:
// qweight I32 [K/16, 2N], scales [G, N] Marlin-permuted, zero points I32 [G, N/8] in Marlin order
// (absent: uint4b8, zero 8), and for act-order the sorted g_idx and its sort indices.
// kernels/marlin_gemm.cu explains the layout, the work split and the numerics.
//
// CUTLASS-style host side: can_implement -> get_workspace_size -> run, every CUDA call checked
// and returned. The K split (and with it the float32 summation order) depends on the problem and
// the SM count only: the same inputs on the same GPU give the same bits.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "int4_quant.h"  // Int4Status

namespace ckpt::cuda {

struct MarlinGemmArgs {
  int dtype = 0;  // of A, scales and C: 0 f16, 1 bf16
  uint64_t m = 0, n = 0, k = 0;
  // Rows of W per scale group; -1 (or >= k) is channelwise, as vLLM's marlin_permute_scales
  // decides. Grouped without act-order: a multiple of 16 dividing k.
  int64_t group_size = 128;
  const void* a = nullptr;           // [m, k] row-major, 16-byte aligned
  const uint32_t* b = nullptr;       // Marlin qweight [k/16, 2n]
  const void* scales = nullptr;      // [groups, n] of dtype, Marlin-permuted
  const uint32_t* zeros = nullptr;   // Marlin zero points I32 [groups, n/8]; null: zero 8 (uint4b8)
  const int32_t* g_idx = nullptr;    // act-order: sorted g_idx [k] (group of sorted row k); else null
  const int32_t* perm = nullptr;     // act-order: sorted row k is column perm[k] of A
  void* c = nullptr;                 // [m, n] row-major
  int sm_count = 0;                  // of the device it runs on (sizes the K split)
};

class MarlinGemm : public KernelErrorState {
 public:
  // What the kernel takes: n % 64, k % 16, the group as above, act-order with both arrays and a
  // group size, sizes below 2^31 elements, A 16-byte aligned.
  static Int4Status can_implement(const MarlinGemmArgs& a);
  // Float32 partial sums when K is split across CTAs (0 when it is not).
  static size_t get_workspace_size(const MarlinGemmArgs& a);
  Int4Status run(const MarlinGemmArgs& a, void* workspace, cudaStream_t stream);
};

}  // namespace ckpt::cuda
