// The activations the CPU GEMM check (gemm_check.h) multiplies the weights with: x[row][col] =
// j/64 for a hashed integer j in [-64, 64], exact in f32, f16 and bf16, so every activation dtype
// sees the same values and the reference needs no rounding model for them.
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

}  // namespace ckpt::validate
