// The per-group and per-element math of INT4 RTN quantization (definition: ops/int4_quant.h), as
// host/device inline functions so that the CPU reference and kernels/int4_quant.cu run the very
// same operations. C++17-clean for nvcc.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/float_convert.h"

namespace ckpt::ops {

// Scale storage types and formats as plain ints (DType's header is C++20).
enum Int4ScaleType : int { kInt4ScaleF16 = 0, kInt4ScaleBF16 = 1, kInt4ScaleF32 = 2 };
enum Int4FormatId : int { kInt4Gptq = 0, kInt4Awq = 1, kInt4Ct = 2 };

// `s` rounded (RNE) to the scale type, as a float32 value.
CKPT_HD inline float int4_round_to_scale_type(float s, int type) {
  if (type == kInt4ScaleF16) return f16_to_f32(f32_to_f16(s));
  if (type == kInt4ScaleBF16) return bf16_to_f32(f32_to_bf16(s));
  return s;
}

// The stored scale for a float32 quotient: rounded to the type; 0 becomes the type's smallest
// positive value (so no code divides by 0). +Inf (an overflowing range) is returned as is: the
// caller reports it.
CKPT_HD inline float int4_stored_scale(float s, int type) {
  const float r = int4_round_to_scale_type(s, type);
  if (r != 0.0f) return r;
  if (type == kInt4ScaleF16) return 5.9604644775390625e-08f;  // 2^-24
  if (type == kInt4ScaleBF16) return 9.18354961579912e-41f;   // 2^-133
  return 1.40129846e-45f;                                     // 2^-149
}

// Symmetric: absmax / 7.5. Asymmetric: (hi - lo) / 15 with lo <= 0 <= hi.
CKPT_HD inline float int4_sym_scale(float amax, int type) { return int4_stored_scale(amax / 7.5f, type); }
CKPT_HD inline float int4_asym_scale(float lo, float hi, int type) { return int4_stored_scale((hi - lo) / 15.0f, type); }

// Asymmetric zero: clamp(RNE(-lo / S), 0, 15) (lo <= 0, S > 0).
CKPT_HD inline uint32_t int4_asym_zero(float lo, float scale) {
  const float z = rintf(-lo / scale);
  return z >= 15.0f ? 15u : static_cast<uint32_t>(z);  // -lo / S >= 0 (or NaN-free: S finite > 0)
}

// Code of one element: clamp(RNE(x / S) + z, 0, 15).
CKPT_HD inline uint32_t int4_code(float x, float scale, uint32_t zero) {
  const float v = rintf(x / scale) + static_cast<float>(zero);  // exact below 2^24; clamped beyond
  return v <= 0.0f ? 0u : (v >= 15.0f ? 15u : static_cast<uint32_t>(v));
}

// Dequantized value: (q - z) * S, one float32 rounding.
CKPT_HD inline float int4_dequant(uint32_t q, uint32_t zero, float scale) {
  return static_cast<float>(static_cast<int>(q) - static_cast<int>(zero)) * scale;
}

// A group whose values are all zero: the scale and zero its format's reference quantizer gives it
// (see ops/int4_quant.h). Every code of such a group equals the zero.
CKPT_HD inline float int4_zero_group_scale(int format, int type) {
  if (format == kInt4Gptq) return int4_round_to_scale_type(2.0f / 15.0f, type);
  if (format == kInt4Awq) return int4_round_to_scale_type(int4_round_to_scale_type(1e-5f, type) / 15.0f, type);
  // torch.finfo(dtype).eps
  if (type == kInt4ScaleF16) return 9.765625e-04f;  // 2^-10
  if (type == kInt4ScaleBF16) return 7.8125e-03f;   // 2^-7
  return 1.1920928955078125e-07f;                   // 2^-23
}
CKPT_HD inline uint32_t int4_zero_group_zero(int format, bool symmetric) {
  if (symmetric) return 8;
  return format == kInt4Gptq ? 7u : (format == kInt4Awq ? 0u : 8u);
}

// The 8 x 8 nibble transpose in place: nibble c of a[r] becomes nibble r of a[c], in three rounds
// of masked swaps (16-, 8-, 4-bit blocks), 72 instructions for 8 words. The kernels turn 8 K-packed
// rows into N-packed (AWQ) words and back with it.
CKPT_HD inline void int4_nibble_transpose8(uint32_t a[8]) {
  for (int i = 0; i < 4; ++i) {
    const uint32_t t = ((a[i] >> 16) ^ a[i + 4]) & 0x0000FFFFu;
    a[i] ^= t << 16;
    a[i + 4] ^= t;
  }
  for (int q = 0; q < 4; ++q) {
    const int i = (q / 2) * 4 + q % 2;  // 0, 1, 4, 5
    const uint32_t t = ((a[i] >> 8) ^ a[i + 2]) & 0x00FF00FFu;
    a[i] ^= t << 8;
    a[i + 2] ^= t;
  }
  for (int q = 0; q < 4; ++q) {
    const int i = 2 * q;
    const uint32_t t = ((a[i] >> 4) ^ a[i + 1]) & 0x0F0F0F0Fu;
    a[i] ^= t << 4;
    a[i + 1] ^= t;
  }
}

// Where the formats keep the code of element (n, k) and the zero point and scale of row n, group
// g of a [N, K] weight with G groups per row (the layout table of ops/int4_quant.h): word index and
// nibble shift. ops::int4_unpack (the CPU decoder every test decodes with, and the CUDA runtime's
// INT4 upload) reads through these.
struct Int4Nibble {
  uint64_t word;
  uint32_t shift;
};
// AWQ's nibble of column 8m + c: the inverse of its [0, 2, 4, 6, 1, 3, 5, 7] order.
CKPT_HD inline uint32_t int4_awq_nibble(uint64_t c) { return static_cast<uint32_t>((c % 2) * 4 + (c % 8) / 2); }
CKPT_HD inline Int4Nibble int4_code_at(int format, uint64_t N, uint64_t K, uint64_t n, uint64_t k) {
  if (format == kInt4Gptq) return {(k / 8) * N + n, static_cast<uint32_t>(4 * (k % 8))};
  if (format == kInt4Awq) return {k * (N / 8) + n / 8, 4 * int4_awq_nibble(n % 8)};
  return {n * ((K + 7) / 8) + k / 8, static_cast<uint32_t>(4 * (k % 8))};
}
CKPT_HD inline Int4Nibble int4_zero_at(int format, uint64_t N, uint64_t G, uint64_t n, uint64_t g) {
  if (format == kInt4Gptq) return {g * (N / 8) + n / 8, static_cast<uint32_t>(4 * (n % 8))};
  if (format == kInt4Awq) return {g * (N / 8) + n / 8, 4 * int4_awq_nibble(n % 8)};
  return {(n / 8) * G + g, static_cast<uint32_t>(4 * (n % 8))};
}
CKPT_HD inline uint64_t int4_scale_at(int format, uint64_t N, uint64_t G, uint64_t n, uint64_t g) {
  return format == kInt4Ct ? n * G + g : g * N + n;
}

}  // namespace ckpt::ops
