// The activations every GEMM check multiplies the weights with, the same on the CPU and on the
// GPU (this header is C++17-clean so kernels/*.cu include it): x[row][col] = j/64 for a hashed
// integer j in [-64, 64], exact in f32, f16 and bf16, so every activation dtype sees the same
// values and the reference needs no rounding model for them.
#pragma once

#include <cstdint>

#include "ops/float_bits.h"

namespace ckpt::validate {

CKPT_HD inline float activation_value(uint64_t row, uint64_t col) {
  uint64_t h = (row + 1) * 0x9E3779B97F4A7C15ull ^ (col + 1) * 0xC2B2AE3D27D4EB4Full;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return static_cast<float>(static_cast<int>(h % 129) - 64) / 64.0f;
}

// FP8 activations (cuBLASLt FP8 GEMMs take both operands in E4M3): x is quantized per tensor with
// this scale, x_fp8 = e4m3(x / scale): |x| <= 1 maps onto the full E4M3 range.
inline constexpr float kFp8ActivationScale = 1.0f / 448.0f;

}  // namespace ckpt::validate
