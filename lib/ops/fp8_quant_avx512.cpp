// The AVX-512 FP8 loops. Quantize: widen, divide, encode and the error terms for 32 elements at a
// time, all in registers; the encoding is e4m3fn_saturating's (fp8_quant.cpp, where the math is
// explained). Amax: an integer max over the magnitude bits, 64 bytes at a time. Both are tested
// against the scalar references bit for bit. Functions here carry the target attribute and
// internal linkage only, so no AVX-512 code can be picked by the linker for callers on other CPUs.
#if defined(__x86_64__)
// GCC 12 warns inside its own avx512fintrin.h (the _mm512_undefined_* pass-through operands).
#if !defined(__clang__)  // clang has no such warning group and would warn about the pragma
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <array>
#include <cstring>

#include "ops/fp8_quant_detail.h"

// BW: 16-bit maxima for amax; DQ: vrangeps clamps and takes magnitudes in one instruction; VBMI:
// vpermt2b gathers the 32 code bytes of two vectors in element order.
#define CKPT_TARGET_FP8_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vbmi")))

namespace ckpt::ops::detail {
namespace {

// --- amax -----------------------------------------------------------------------------------

template <typename Bits>
CKPT_TARGET_FP8_AVX512 inline __m512i max_bits(__m512i a, __m512i b) {
  if constexpr (sizeof(Bits) == 2) return _mm512_max_epu16(a, b);
  else return _mm512_max_epu32(a, b);
}

// The largest magnitude bits (sign cleared) of n elements of `Bits` (uint16_t or uint32_t).
template <typename Bits>
CKPT_TARGET_FP8_AVX512 uint32_t max_magnitude_bits(const uint8_t* in, uint64_t n) {
  constexpr uint64_t kPerVector = 64 / sizeof(Bits);
  const __m512i mask = sizeof(Bits) == 2 ? _mm512_set1_epi16(0x7FFF) : _mm512_set1_epi32(0x7FFFFFFF);
  __m512i m0 = _mm512_setzero_si512(), m1 = m0, m2 = m0, m3 = m0;  // four chains hide the latency
  uint64_t i = 0;
  for (; i + 4 * kPerVector <= n; i += 4 * kPerVector) {
    const uint8_t* p = in + i * sizeof(Bits);
    m0 = max_bits<Bits>(m0, _mm512_and_si512(_mm512_loadu_si512(p), mask));
    m1 = max_bits<Bits>(m1, _mm512_and_si512(_mm512_loadu_si512(p + 64), mask));
    m2 = max_bits<Bits>(m2, _mm512_and_si512(_mm512_loadu_si512(p + 128), mask));
    m3 = max_bits<Bits>(m3, _mm512_and_si512(_mm512_loadu_si512(p + 192), mask));
  }
  for (; i < n; i += kPerVector) {  // masked loads: the lanes past the end read as zeros
    const uint64_t left = std::min(kPerVector, n - i);
    __m512i v;
    if constexpr (sizeof(Bits) == 2) v = _mm512_maskz_loadu_epi16(static_cast<__mmask32>((1ull << left) - 1), in + i * 2);
    else v = _mm512_maskz_loadu_epi32(static_cast<__mmask16>((1u << left) - 1), in + i * 4);
    m0 = max_bits<Bits>(m0, _mm512_and_si512(v, mask));
  }
  __m512i m = max_bits<Bits>(max_bits<Bits>(m0, m1), max_bits<Bits>(m2, m3));
  if constexpr (sizeof(Bits) == 2)  // the larger of each dword's two halves, in its low half
    m = _mm512_and_si512(_mm512_max_epu16(m, _mm512_srli_epi32(m, 16)), _mm512_set1_epi32(0xFFFF));
  return _mm512_reduce_max_epu32(m);
}

template <typename Bits>
CKPT_TARGET_FP8_AVX512 void amax_runs(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                                      float* amax) {
  Fp8Runs runs(grid, first, count);
  for (uint64_t off, len, g; runs.next(off, len, g);) {
    const uint32_t m = max_magnitude_bits<Bits>(in + off * sizeof(Bits), len);
    amax[g] = std::max(amax[g], amax_of_magnitude_bits(dtype, m));
  }
}

// --- quantize -------------------------------------------------------------------------------

// vrangeps controls: the operand smaller (0b10) or larger (0b11) in magnitude, sign cleared (0b10xx).
constexpr int kMinAbs = 0b1010, kMaxAbs = 0b1011;

struct Constants {
  __m512 scale, max_code_value;
  __m512i exponent_mask, min_exponent, c_offset, sign_mask, byte_order;
};

// vpermt2b indices picking byte 3 of each dword of two vectors, where encode16 leaves the codes,
// in element order: for BF16 the first vector holds the even elements and the second the odd
// ones (see load32), otherwise the first holds elements 0-15.
template <FloatFormat I>
constexpr std::array<uint8_t, 64> code_byte_order() {
  std::array<uint8_t, 64> idx{};
  for (int j = 0; j < 32; ++j) {
    const bool bf16 = I == FloatFormat::kBF16;
    const int lane = bf16 ? j / 2 : j % 16;
    const bool second = bf16 ? j % 2 == 1 : j >= 16;
    idx[j] = static_cast<uint8_t>((second ? 64 : 0) + 4 * lane + 3);
  }
  return idx;
}

template <FloatFormat I>
CKPT_TARGET_FP8_AVX512 Constants constants() {
  alignas(64) static constexpr std::array<uint8_t, 64> kOrder = code_byte_order<I>();
  return {_mm512_setzero_ps(),
          _mm512_set1_ps(448.0f),
          _mm512_set1_epi32(0x7F800000),
          _mm512_set1_epi32(0x3C800000),  // 2^-6
          _mm512_set1_epi32(20 << 23),
          _mm512_set1_epi32(static_cast<int>(0x80000000u)),
          _mm512_load_si512(kOrder.data())};
}

// 32 elements widened to float32 as two vectors. BF16 is widened by shifting and masking one
// 64-byte load: `lo` gets the even elements, `hi` the odd ones.
template <FloatFormat I>
CKPT_TARGET_FP8_AVX512 inline void load32(const uint8_t* p, __m512& lo, __m512& hi) {
  if constexpr (I == FloatFormat::kBF16) {
    const __m512i w = _mm512_loadu_si512(p);
    lo = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    hi = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  } else if constexpr (I == FloatFormat::kF16) {
    lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
  } else {
    lo = _mm512_loadu_ps(p);
    hi = _mm512_loadu_ps(p + 64);
  }
}

// Error terms of some lanes of one block, in float32 and in the scaled domain (as quantize_run
// in fp8_quant.cpp): sum (|v| - |q|)^2, sum x^2 and max ||v| - |q||.
struct Terms {
  __m512 sum_sq_err, sum_sq, max_err;
};

// e4m3fn_saturating(x / scale) of 16 lanes: each dword holds its code in byte 3 (sign | code).
// Adds the lanes' error terms to `t`.
CKPT_TARGET_FP8_AVX512 inline __m512i encode16(__m512 x, const Constants& k, Terms& t) {
  const __m512 v = _mm512_div_ps(x, k.scale);
  const __m512 a = _mm512_range_ps(v, k.max_code_value, kMinAbs);  // min(|v|, 448)
  const __m512i exponent = _mm512_and_si512(_mm512_castps_si512(a), k.exponent_mask);
  const __m512i e = _mm512_max_epu32(exponent, k.min_exponent);
  const __m512 c = _mm512_castsi512_ps(_mm512_add_epi32(e, k.c_offset));
  const __m512 s = _mm512_add_ps(a, c);
  const __m512 m = _mm512_sub_ps(s, c);
  // The magnitude code k + 8 * (max(E, -6) + 6), 24 bits up: k << 24 is bits(s) << 24 (c's low
  // bits are zero), and the rest is (e - bits(2^-6)) << 4.
  const __m512i code = _mm512_add_epi32(_mm512_slli_epi32(_mm512_castps_si512(s), 24),
                                        _mm512_slli_epi32(_mm512_sub_epi32(e, k.min_exponent), 4));
  const __m512 d = _mm512_sub_ps(_mm512_abs_ps(v), m);
  t.sum_sq_err = _mm512_fmadd_ps(d, d, t.sum_sq_err);
  t.sum_sq = _mm512_fmadd_ps(x, x, t.sum_sq);
  t.max_err = _mm512_range_ps(t.max_err, d, kMaxAbs);
  // code | (x & sign_mask): 0xF8 is the truth table of A | (B & C), with A, the dead code
  // register, as the destination.
  return _mm512_ternarylogic_epi32(code, _mm512_castps_si512(x), k.sign_mask, 0xF8);
}

template <FloatFormat I>
CKPT_TARGET_FP8_AVX512 inline void step32(const uint8_t* in, uint8_t* out, const Constants& k, Terms& lo_terms,
                                          Terms& hi_terms) {
  __m512 lo, hi;
  load32<I>(in, lo, hi);
  const __m512i codes = _mm512_permutex2var_epi8(encode16(lo, k, lo_terms), k.byte_order, encode16(hi, k, hi_terms));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_castsi512_si256(codes));
}

// The error terms of a whole call, across blocks: sums in double (8 lanes), the max error
// unscaled, in float32.
struct Totals {
  __m512d sum_sq_err, sum_sq;
  __m512 max_err;

  // Adds one block's float32 terms, scaled back by the block's scale.
  CKPT_TARGET_FP8_AVX512 void add(const Terms& a, const Terms& b, float scale) {
    const __m512d s2 = _mm512_set1_pd(static_cast<double>(scale) * scale);
    const __m512 se = _mm512_add_ps(a.sum_sq_err, b.sum_sq_err), sw = _mm512_add_ps(a.sum_sq, b.sum_sq);
    sum_sq_err = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(se)), s2, sum_sq_err);
    sum_sq_err = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(se, 1)), s2, sum_sq_err);
    sum_sq = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(sw)), sum_sq);
    sum_sq = _mm512_add_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(sw, 1)), sum_sq);
    max_err = _mm512_max_ps(max_err, _mm512_mul_ps(_mm512_max_ps(a.max_err, b.max_err), _mm512_set1_ps(scale)));
  }
};

// Codes of one block's n elements, adding their terms to `totals`.
template <FloatFormat I>
CKPT_TARGET_FP8_AVX512 void quantize_run(const uint8_t* in, uint64_t n, uint8_t* out, const Constants& k,
                                         float scale, Totals& totals) {
  constexpr uint64_t kElementBytes = sizeof(float_bits_t<I>);
  constexpr uint64_t kTileSteps = 64;  // 2048 elements summed in float32 before moving to double
  for (uint64_t e = 0; e < n;) {
    Terms a{_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}, b = a;
    const uint64_t steps = std::min(kTileSteps, (n - e) / 32);
    for (uint64_t s = 0; s < steps; ++s, e += 32) step32<I>(in + e * kElementBytes, out + e, k, a, b);
    if (steps < kTileSteps && e < n) {  // the tail, zero padded: zeros add nothing to the terms
      alignas(64) uint8_t src[32 * kElementBytes] = {}, dst[32];
      std::memcpy(src, in + e * kElementBytes, (n - e) * kElementBytes);
      step32<I>(src, dst, k, a, b);
      std::memcpy(out + e, dst, n - e);
      e = n;
    }
    totals.add(a, b, scale);
  }
}

template <FloatFormat I>
CKPT_TARGET_FP8_AVX512 void quantize(const Fp8Grid& grid, const uint8_t* in, uint64_t first, uint64_t count,
                                     const float* scales, uint8_t* out, Fp8ErrorStats* stats) {
  Constants k = constants<I>();
  Totals totals{_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_ps()};
  Fp8Runs runs(grid, first, count);
  for (uint64_t off, len, g; runs.next(off, len, g);) {
    k.scale = _mm512_set1_ps(scales[g]);
    quantize_run<I>(in + off * sizeof(float_bits_t<I>), len, out + off, k, scales[g], totals);
  }
  if (stats)
    stats->merge({_mm512_reduce_add_pd(totals.sum_sq_err), _mm512_reduce_add_pd(totals.sum_sq),
                  static_cast<double>(_mm512_reduce_max_ps(totals.max_err))});
}

}  // namespace

bool fp8_avx512_on_this_cpu() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vbmi");
}

void fp8_amax_avx512(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                     float* amax) {
  if (dtype == DType::F32) return amax_runs<uint32_t>(grid, dtype, in, first, count, amax);
  amax_runs<uint16_t>(grid, dtype, in, first, count, amax);
}

void fp8_quantize_avx512(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                         const float* scales, uint8_t* out, Fp8ErrorStats* stats) {
  switch (dtype) {
    case DType::BF16: return quantize<FloatFormat::kBF16>(grid, in, first, count, scales, out, stats);
    case DType::F16: return quantize<FloatFormat::kF16>(grid, in, first, count, scales, out, stats);
    default: return quantize<FloatFormat::kF32>(grid, in, first, count, scales, out, stats);
  }
}

}  // namespace ckpt::ops::detail
#endif
