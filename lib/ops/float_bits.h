// Bit-level building blocks shared by every float conversion reference (lib/ops/float_convert.h,
// lib/ops/fp8.h) and by their CUDA twins, which include these same headers: one piece of rounding
// math for CPU and GPU, so both give the same bytes by construction. Kept C++17-clean and free of
// library dependencies because nvcc compiles kernels/*.cu as C++17.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CKPT_HD __host__ __device__
#else
#define CKPT_HD
#endif

namespace ckpt::ops {

CKPT_HD inline uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

CKPT_HD inline float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

CKPT_HD inline uint64_t f64_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
#endif
}

CKPT_HD inline double f64_from_bits(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
#endif
}

// Shifts `v` right by `s` bits (1 <= s < bit width), rounding to nearest, ties to even.
template <typename U>
CKPT_HD inline U shift_right_rne(U v, int s) {
  const U half_minus_one = (U(1) << (s - 1)) - 1;
  const U odd = (v >> s) & 1;
  return (v + half_minus_one + odd) >> s;
}

// Rounds the magnitude of a finite IEEE binary number (bits `a` with the sign bit clear; SrcE
// exponent bits, SrcM mantissa bits) to a narrower IEEE-layout format with `ebits` exponent and
// `mbits` mantissa bits (bias 2^(ebits-1)-1, subnormals kept), round-to-nearest-even. Returns the
// magnitude code. A rounding carry moves into the exponent field naturally; codes at or above the
// format's all-ones exponent mean the value overflowed, and callers decide (Inf or saturate).
template <typename U, int SrcE, int SrcM>
CKPT_HD inline U round_magnitude_rne(U a, int ebits, int mbits) {
  constexpr int kSrcBias = (1 << (SrcE - 1)) - 1;
  const int bias = (1 << (ebits - 1)) - 1;
  const int drop = SrcM - mbits;                 // mantissa bits dropped for a normal result
  const int exp = static_cast<int>(a >> SrcM);   // biased source exponent
  const int rebias = kSrcBias - bias;
  if (exp > rebias) {  // normal in the target: re-bias the exponent field, then round the bits off
    return shift_right_rne<U>(a - (static_cast<U>(rebias) << SrcM), drop);
  }
  // Subnormal (or zero) in the target. Value = sig * 2^(e - bias_src - SrcM) with e the effective
  // exponent; the target's unit is 2^(1 - bias - mbits); shift by the difference.
  const U sig = (a & ((U(1) << SrcM) - 1)) | (exp ? (U(1) << SrcM) : U(0));
  const int e = exp ? exp : 1;
  const int s = drop + 1 + rebias - e;  // >= drop + 1 here
  if (s > SrcM + 1) return 0;           // below half the smallest subnormal: rounds to zero
  return shift_right_rne<U>(sig, s);
}

}  // namespace ckpt::ops
