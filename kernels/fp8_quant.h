// CUDA twins of the FP8 quantizer's CPU fast path (lib/ops/fp8_quant.h): the same block grid,
// the same amax, the same codes bit for bit (tests/gpu/test_fp8_quant_gpu.cpp). Plain launchers
// with C-style arguments so this header stays C++17-clean for nvcc; the orchestration that uses
// lib/ lives in fp8_quant_engine.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ckpt::cuda {

// Input element types (the quantizer's source dtypes).
enum Fp8InputType : int { kFp8InBF16 = 0, kFp8InF16 = 1, kFp8InF32 = 2 };

// The elements [first, first + count) of a [rows, cols] weight, split into blocks of
// block_rows x block_cols; `group_base` is the first scale-grid index the device arrays hold.
// The kernels index in 32 bits: count and cols below 2^31, rows below 2^32, and with more than one
// block also rows, first % cols + count and the chunk's scale-array span below 2^31 (the launchers
// return cudaErrorInvalidValue otherwise; the producers hand over chunks of a few million elements).
struct Fp8ChunkDesc {
  uint64_t rows, cols, block_rows, block_cols;
  uint64_t first, count;
  uint64_t group_base;
};

// amax_bits[g - group_base] = max(it, max |x| bits) over the chunk's elements of block g, as
// float32 magnitude bits (NaN/Inf give values >= 0x7F800000). `in` holds the chunk's elements.
cudaError_t fp8_amax_launch(const void* in, Fp8InputType type, const Fp8ChunkDesc& d, unsigned* amax_bits,
                            cudaStream_t stream);

// Largest number of per-CTA partial sums fp8_quantize_launch writes (3 doubles each).
inline constexpr int kFp8MaxCtas = 1024;

// codes[i] = E4M3FN(clamp(x_i / scale, -448, 448)), scale = scales[g - group_base]. Writes per-CTA
// error partials to `partials` ([ctas][3]: Σ err², Σ w², max |err|) and their count to *ctas.
cudaError_t fp8_quantize_launch(const void* in, Fp8InputType type, const Fp8ChunkDesc& d, const float* scales,
                                uint8_t* codes, double* partials, int* ctas, cudaStream_t stream);

}  // namespace ckpt::cuda
