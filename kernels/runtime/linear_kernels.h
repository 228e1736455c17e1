// The Linear kernels of the CUDA decoder forward, over a weight kept on the device in its stored
// form (runtime/device_linear.h uploads it): y[m][n] = sum_k W[n][k] x[m][k] (+ bias[n]) with
// float32 activations and float32 accumulation, W dequantized in registers element by element
// exactly as the CPU reference dequantizes it (validate::dequantize_rows for dense and FP8,
// ops::int4_decode for INT4), so the numerics stay float32 like a dequantize-then-SGEMM path.
//
//  - linear_skinny: the decode path (m <= kSkinnyMaxRows rows). A thread block per tile of a few
//    output rows reads them once with 16-byte loads (4 f32, 8 f16/bf16, 16 FP8 or 32 INT4
//    elements per load), its threads spread along k with the next loads in flight while they
//    dequantize in registers and take the dot product with every one of the m activation rows:
//    the weight bytes cross HBM once per step, which is what bounds batch-1 decode (the work
//    decomposition and its bytes in flight: linear_kernels.cu, above skinny_kernel). The decode
//    step's launches also fold in the RMSNorm before them and SiLU(gate) * up after gate/up
//    (linear_skinny_fused, SkinnyFusion), so those run in no kernel of their own.
//  - dequantize_linear: the prefill path writes W as float32 into a scratch [N, K] for a float32
//    cuBLAS GEMM (gpu_forward.cpp), which wins once m is large.
//  - embed_rows: gathers (and dequantizes) embedding rows by token id.
// C-style so that C++20 host code calls them.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ckpt::cuda {

// How an FP8 weight's scale is laid out.
enum class ScaleKind : int { kNone = 0, kTensor = 1, kChannel = 2, kBlock = 3 };

// How elements are stored. kInt4: the runtime's one INT4 layout, converted on the host from
// GPTQ / AWQ / compressed-tensors at upload: row n holds K-packed words, column k in nibble k % 8
// of word k / 8 (nibbles past K are 0).
enum class WeightElem : int { kF32 = 0, kF16 = 1, kBF16 = 2, kE4M3 = 3, kInt4 = 4 };

struct LinearView {
  const void* w = nullptr;   // n rows of row_bytes bytes (row_bytes a multiple of 16 for INT4)
  WeightElem elem = WeightElem::kF32;
  uint64_t n = 0, k = 0, row_bytes = 0;
  // FP8: w = e4m3 * scale, scale float32 per tensor ([1]), channel ([n]) or block
  // ([ceil(n / block_n)][ceil(k / block_k)]), as validate::dequantize_rows.
  ScaleKind scale_kind = ScaleKind::kNone;
  const float* scale = nullptr;
  uint64_t block_n = 0, block_k = 0;
  // INT4: w = (q - zero) * scale (ops::int4_dequant) with float32 scales and uint8 zeros (GPTQ v1
  // zeros may read back as 16) per [n][groups]; column k in group g_idx[k], or k / group when
  // g_idx is null.
  const float* group_scale = nullptr;
  const uint8_t* group_zero = nullptr;
  const int32_t* g_idx = nullptr;
  uint64_t group = 0, groups = 0;
};

// The most activation rows linear_skinny takes: up to here reading the weight once and keeping
// m accumulators per lane beats dequantize + GEMM; past it the GEMM's reuse wins.
constexpr uint64_t kSkinnyMaxRows = 8;

// Whether linear_skinny reads `w` with 16-byte loads for activations `x` ([m][k], contiguous);
// otherwise (rows not 16-byte multiples, an FP8 block or INT4 group narrower than one load,
// act-order g_idx, unaligned x) it reads element by element, correct but slower.
bool skinny_vectorized(const LinearView& w, const float* x);

// Several Linears on the same activations in one launch (q/k/v, gate/up: fewer kernel nodes in
// a decode step's graph): each job's y = x W^T (+ bias), as linear_skinny.
struct SkinnyJob {
  LinearView w;
  float* y = nullptr;
  const float* bias = nullptr;
};
constexpr int kSkinnyMaxJobs = 3;
cudaError_t linear_skinny_jobs(const SkinnyJob* jobs, int count, const float* x, uint64_t m, bool accumulate,
                               cudaStream_t stream, bool element_wise = false);

// What one decode GEMV launch folds in besides its Linears (the one-rank decode step's q/k/v,
// gate/up and lm_head: the kernels before and after them run inside the GEMV instead of on their
// own; linear_kernels.cu, "Fusions").
//  - norm: x is the residual stream, [m][k], and each job's input is RMSNorm(x) with this weight
//    ([k]) and eps: y = (W (x * norm)) / sqrt(mean(x^2) + eps) (+ bias), as rms_norm_rows then the
//    GEMV up to float32 reassociation.
//  - silu_pairs (with norm): two jobs, gate and up (one shape and layout); job 0's y receives
//    silu(gate) * up ([m][n]), bit for bit what silu_mul gives from the two outputs of the same
//    launch without pairs; job 1's y is not written.
struct SkinnyFusion {
  const float* norm = nullptr;
  float eps = 0.0f;
  bool silu_pairs = false;
};
// Whether linear_skinny_fused takes `jobs` on `x` with `fuse`: one launch of the 16-byte-load
// kernel (every job skinny_vectorized, one format), the norm weight 16-byte aligned, pairs of one
// layout and with the norm, f32 / f16 / bf16 only (FP8 and INT4 measured slower fused). The
// element-wise kernel fuses nothing: the callers run the unfused kernels instead.
bool skinny_fusable(const SkinnyJob* jobs, int count, const float* x, const SkinnyFusion& fuse);
// linear_skinny_jobs (not accumulating) with `fuse`; cudaErrorInvalidValue where !skinny_fusable
// or m > kSkinnyMaxRows.
cudaError_t linear_skinny_fused(const SkinnyJob* jobs, int count, const float* x, uint64_t m, const SkinnyFusion& fuse,
                                cudaStream_t stream);

// y[m][n] = x[m][:] . W[n][:] (+ bias[n], bias may be null) for 1 <= m <= kSkinnyMaxRows;
// `accumulate`: y[m][n] += that (a residual add without a kernel of its own). `element_wise`
// forces the element-by-element kernel (tests compare the two).
cudaError_t linear_skinny(const LinearView& w, const float* x, uint64_t m, float* y, const float* bias,
                          bool accumulate, cudaStream_t stream, bool element_wise = false);

// The Marlin W4A16 GEMM (kernels/marlin_gemm.h, run by device_linear.cpp on the Marlin tensors
// as stored) takes A and gives C in f16 or bf16 (`type16`: 0 f16, 1 bf16, the scales' dtype): the
// float32 activations are rounded to it (RNE) before, and C widened after:
// out[i] = x[i] rounded to type16 for i < count;
cudaError_t f32_to_half(const float* x, uint64_t count, int type16, void* out, cudaStream_t stream);
// y[r][j] = (accumulate ? y[r][j] : 0) + float(c[r][j]) (+ bias[j], bias may be null).
cudaError_t half_to_f32_add(const void* c, int type16, uint64_t rows, uint64_t n, const float* bias, bool accumulate,
                            float* y, cudaStream_t stream);

// out[n][k] = W[n][k] as float32.
cudaError_t dequantize_linear(const LinearView& w, float* out, cudaStream_t stream);

// out[t][:] += table[ids[t] - row_begin][:] for ids in [row_begin, row_begin + rows): the
// vocab-parallel embedding slice of one rank (its padding rows past `rows` never read), dequantized.
cudaError_t embed_rows(const LinearView& table, uint64_t row_begin, uint64_t rows, const int64_t* ids, uint64_t n,
                       float* out, cudaStream_t stream);

}  // namespace ckpt::cuda
