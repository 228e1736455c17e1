// The kernels of the GPTQ solve on the GPU (kernels/calib/gptq_device.h orchestrates them with
// cuBLAS and cuSOLVER). Plain C++17 launchers so nvcc compiles them; each enqueues on `stream` and
// returns the launch's status (the caller checks it with CKPT_CUDA). Matrices are row-major float32.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ckpt::cuda::gptq {

// The widest lazy-batch block the sweep kernel takes (GPTQ's 128 columns).
constexpr int kMaxBlock = 128;

// Group parameters of w [n, k] from the ORIGINAL weights with the ops/int4_math.h definition
// (ops/int4_quant_detail.h int4_group_params): scales[r * groups + g], zeros[...]. Bit 0 of *flags
// is set when a group holds a NaN/Inf, bit 1 when a scale overflows its type (the caller names the
// first problem with the CPU reference). One warp per group.
struct ParamsArgs {
  const float* w = nullptr;
  uint64_t n = 0, k = 0, group = 0, groups = 0;
  bool symmetric = true;
  int scale_type = 0;  // ops::Int4ScaleType
  int format = 0;      // ops::Int4FormatId
  float* scales = nullptr;
  uint8_t* zeros = nullptr;
  unsigned* flags = nullptr;
};
cudaError_t launch_params(const ParamsArgs& a, cudaStream_t stream);

// hp[a, b] = h[perm a, perm b], with hp[c, c] = 1 where that diagonal is 0 (a dead input);
// wp[r, c] = w[r, perm c], 0 for a dead input (IST-DASLab/gptq gptq.py fasterquant, llm-compressor
// modifiers/gptq/gptq_quantize.py: `dead = diag(H) == 0`).
cudaError_t launch_permute(const float* h, const float* w, const uint32_t* perm, uint64_t n, uint64_t k, float* hp,
                           float* wp, cudaStream_t stream);

// a = hp + lambda on the diagonal.
cudaError_t launch_damped_copy(const float* hp, uint64_t k, float lambda, float* a, cudaStream_t stream);

// *bad = 1 when a diagonal element of a [k, k] is not positive and finite (a Cholesky factor that
// factorised a NaN, or a pivot cuSOLVER let pass). *bad must be 0 before.
cudaError_t launch_check_diagonal(const float* a, uint64_t k, int* bad, cudaStream_t stream);

// One lazy-batch block of the sweep, columns [i1, i1 + cnt) of the permuted weights wp [n, k]
// (cnt <= kMaxBlock): column by column q = Q(w), e = (w − q) / U[c, c], the block's later columns
// −= e · U[c, ·]; writes codes and dequantized values at the ORIGINAL column perm[c], the block's
// errors err[r * kMaxBlock + i] for the trailing update, and adds Σ (w − q)² / U[c, c]² / 2 of row
// r to loss[r]. u is U row-major (only j >= c is read). One warp per row, the block's columns in
// its lanes' registers (4 each), U's block in shared memory.
struct SweepArgs {
  float* wp = nullptr;
  const float* u = nullptr;
  const uint32_t* perm = nullptr;
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  uint64_t n = 0, k = 0, group = 0, groups = 0, i1 = 0;
  int cnt = 0;
  float* err = nullptr;
  uint8_t* codes = nullptr;
  float* dequantized = nullptr;
  double* loss = nullptr;
};
cudaError_t launch_sweep_block(const SweepArgs& a, cudaStream_t stream);

// RTN of the original w [n, k] with the parameters (the Cholesky-failure fallback).
cudaError_t launch_rtn(const float* w, uint64_t n, uint64_t k, uint64_t group, uint64_t groups, const float* scales,
                       const uint8_t* zeros, uint8_t* codes, float* dequantized, cudaStream_t stream);

// out[a, b] = f · sum[min(a, b), max(a, b)]: the Hessian's scaled matrix, exactly symmetric.
cudaError_t launch_scale_symmetric(const float* sum, uint64_t k, float f, float* out, cudaStream_t stream);

}  // namespace ckpt::cuda::gptq
