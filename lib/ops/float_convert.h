// Scalar references for the float casts of `ckpt cast` (F64/F32/F16/BF16 -> F32/F16/BF16), one per
// conversion, bit-identical with torch 2.11's CPU `tensor.to(dtype)` (checked on every 16-bit
// pattern and on torch's own f32/f64 vectors, testdata/numerics/cast16 and cast32): finite values
// round to nearest even, overflow gives ±Inf, subnormals and ±0 are kept. NaNs are mapped exactly
// as torch maps them, which differs between conversions (torch's vectorized x86 loops):
//   f32/f64 -> bf16 : every NaN -> 0xFFFF                      (ATen's AVX-512 cvtfp32_bf16)
//   f16 -> bf16     : every NaN -> 0x7FC0                      (c10::BFloat16's scalar path)
//   f32 -> f16      : sign | 0x7E00 | top 9 payload bits       (vcvtps2ph)
//   f16 -> f32      : sign | 0x7FC00000 | payload << 13        (vcvtph2ps, quieted)
//   bf16 -> f32     : the bits shifted, signalling NaNs stay signalling
//   f64 -> f32      : sign | 0x7FC00000 | top 22 payload bits  (cvtsd2ss)
// f64 -> f16 and f64 -> bf16 go through f32 as torch does (so they round twice; torch's vectors
// include double-rounding probes that confirm it). The CUDA kernel includes this header, so CPU
// and GPU share the math. Kept C++17-clean for nvcc.
#pragma once

#include <cstdint>

#include "ops/float_bits.h"

namespace ckpt::ops {

// ---- widening (exact) ----------------------------------------------------------------------

CKPT_HD inline float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

CKPT_HD inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  if (exp == 0x1F) return f32_from_bits(sign | (man ? 0x7FC00000u | (man << 13) : 0x7F800000u));
  if (exp != 0) return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
  // Subnormal m * 2^-24: exact as a float32 product.
  return f32_from_bits(sign | f32_bits(static_cast<float>(man) * 5.9604644775390625e-08f));
}

// ---- narrowing (round to nearest even) -------------------------------------------------------

CKPT_HD inline float f64_to_f32(double d) {
  const uint64_t u = f64_bits(d);
  const uint32_t sign = static_cast<uint32_t>(u >> 32) & 0x80000000u;
  const uint64_t a = u & 0x7FFFFFFFFFFFFFFFull;
  if (a > 0x7FF0000000000000ull) return f32_from_bits(sign | 0x7FC00000u | static_cast<uint32_t>((a >> 29) & 0x3FFFFF));
  uint64_t code = round_magnitude_rne<uint64_t, 11, 52>(a, 8, 23);
  if (code > 0x7F800000u) code = 0x7F800000u;  // overflow (and Inf) -> Inf
  return f32_from_bits(sign | static_cast<uint32_t>(code));
}

// bf16 keeps float32's exponent, so rounding is a plain add on the bits (carries into Inf).
// `nan` is the code every NaN becomes (torch's choice depends on the source dtype, see above).
CKPT_HD inline uint16_t f32_to_bf16_with_nan(float f, uint16_t nan) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return nan;
  return static_cast<uint16_t>(shift_right_rne<uint32_t>(u, 16));
}

inline constexpr uint16_t kBF16NaNFromF32 = 0xFFFF;
inline constexpr uint16_t kBF16NaNFromF16 = 0x7FC0;

CKPT_HD inline uint16_t f32_to_bf16(float f) { return f32_to_bf16_with_nan(f, kBF16NaNFromF32); }

CKPT_HD inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00 | static_cast<uint16_t>((a >> 13) & 0x3FF);
  uint32_t code = round_magnitude_rne<uint32_t, 8, 23>(a, 5, 10);
  if (code > 0x7C00) code = 0x7C00;  // overflow (and Inf) -> Inf
  return sign | static_cast<uint16_t>(code);
}

// ---- compositions, as torch composes them ----------------------------------------------------

CKPT_HD inline uint16_t f64_to_bf16(double d) { return f32_to_bf16(f64_to_f32(d)); }
CKPT_HD inline uint16_t f64_to_f16(double d) { return f32_to_f16(f64_to_f32(d)); }
CKPT_HD inline uint16_t bf16_to_f16(uint16_t h) { return f32_to_f16(bf16_to_f32(h)); }  // exact widening first
CKPT_HD inline uint16_t f16_to_bf16(uint16_t h) { return f32_to_bf16_with_nan(f16_to_f32(h), kBF16NaNFromF16); }

// ---- one element, by format: what the array loops (CPU and CUDA) are built from --------------

enum class FloatFormat : uint8_t { kF64, kF32, kF16, kBF16 };

template <FloatFormat F> struct FloatStorage;  // the bits type of one element
template <> struct FloatStorage<FloatFormat::kF64> { using type = uint64_t; };
template <> struct FloatStorage<FloatFormat::kF32> { using type = uint32_t; };
template <> struct FloatStorage<FloatFormat::kF16> { using type = uint16_t; };
template <> struct FloatStorage<FloatFormat::kBF16> { using type = uint16_t; };
template <FloatFormat F> using float_bits_t = typename FloatStorage<F>::type;

// The bf16 NaN torch produces from a source format.
CKPT_HD constexpr uint16_t bf16_nan_from(FloatFormat in) { return in == FloatFormat::kF16 ? kBF16NaNFromF16 : kBF16NaNFromF32; }

// The reference conversion of one element from format I to O (O one of F32/F16/BF16), on bits.
template <FloatFormat I, FloatFormat O>
CKPT_HD inline float_bits_t<O> convert_bits(float_bits_t<I> x) {
  static_assert(O != FloatFormat::kF64, "casts to F64 are not offered");
  if constexpr (I == O) {
    return x;
  } else if constexpr (I == FloatFormat::kF64) {
    const float f = f64_to_f32(f64_from_bits(x));  // torch narrows f64 through f32
    if constexpr (O == FloatFormat::kF32) return f32_bits(f);
    else if constexpr (O == FloatFormat::kF16) return f32_to_f16(f);
    else return f32_to_bf16(f);
  } else {
    // Every other source widens exactly to f32 first.
    float f;
    if constexpr (I == FloatFormat::kF32) f = f32_from_bits(x);
    else if constexpr (I == FloatFormat::kF16) f = f16_to_f32(x);
    else f = bf16_to_f32(x);
    if constexpr (O == FloatFormat::kF32) return f32_bits(f);
    else if constexpr (O == FloatFormat::kF16) return f32_to_f16(f);
    else return f32_to_bf16_with_nan(f, bf16_nan_from(I));
  }
}

}  // namespace ckpt::ops
