// FP8 E4M3FN and E5M2 scalar references (pytorch c10/util/Float8_e4m3fn.h, Float8_e5m2.h): encode from
// float32 with round-to-nearest-even and saturation to the largest finite value (±448 / ±57344; ±Inf
// too; CUDA's __NV_SATFINITE), NaN -> the format's NaN with the input's sign (0x7F|s, as c10's code);
// decode exactly. The quantizer's CPU and CUDA paths are tested against these functions.
#pragma once

#include <cstdint>

#include "ops/float_bits.h"

namespace ckpt::ops {

inline constexpr float kE4M3FNMax = 448.0f;
inline constexpr float kE5M2Max = 57344.0f;

namespace detail {
// Encodes f with `ebits`/`mbits` and clamps the magnitude code to `max_code`.
CKPT_HD inline uint8_t f32_to_fp8(float f, int ebits, int mbits, uint32_t max_code) {
  const uint32_t u = f32_bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7F;  // NaN (both formats use 0x7F as their NaN here)
  uint32_t code = round_magnitude_rne<uint32_t, 8, 23>(a, ebits, mbits);  // Inf gives a huge code
  if (code > max_code) code = max_code;
  return static_cast<uint8_t>(sign | code);
}
}  // namespace detail

CKPT_HD inline uint8_t f32_to_e4m3fn(float f) { return detail::f32_to_fp8(f, 4, 3, 0x7E); }
CKPT_HD inline uint8_t f32_to_e5m2(float f) { return detail::f32_to_fp8(f, 5, 2, 0x7B); }

// E4M3FN: bias 7, no infinities, S.1111.111 is NaN; exponent 0 holds subnormals m/8 * 2^-6.
// torch decodes the NaN to sign|0x7FF00000 (testdata/numerics/fp8.safetensors); so do we.
CKPT_HD inline float e4m3fn_to_f32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80) << 24;
  const uint32_t exp = (b >> 3) & 0xF, man = b & 0x7;
  if (exp == 0xF && man == 0x7) return f32_from_bits(sign | 0x7FF00000u);
  if (exp != 0) return f32_from_bits(sign | ((exp + 120) << 23) | (man << 20));
  // Subnormal: m/8 * 2^-6 = m * 2^-9, exact in float32.
  const float mag = static_cast<float>(man) * 0.001953125f;
  return f32_from_bits(sign | f32_bits(mag));
}

// E5M2 is the top byte of an IEEE half: decoded as torch decodes a half (NaNs come back quiet,
// payload kept).
CKPT_HD inline float e5m2_to_f32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80) << 24;
  const uint32_t exp = (b >> 2) & 0x1F, man = b & 0x3;
  if (exp == 0x1F) return f32_from_bits(sign | (man ? 0x7FC00000u | (man << 21) : 0x7F800000u));
  if (exp != 0) return f32_from_bits(sign | ((exp + 112) << 23) | (man << 21));
  const float mag = static_cast<float>(man) * 1.52587890625e-05f;  // m * 2^-16
  return f32_from_bits(sign | f32_bits(mag));
}

}  // namespace ckpt::ops
