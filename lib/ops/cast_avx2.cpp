// The AVX2 + F16C cast path: 8 elements per step through a float32 vector, the tail through the
// scalar reference. Same choices as cast_avx512.cpp (hardware conversions only where they equal
// the reference; f32 -> bf16 by integer rounding), same internal-linkage rule.
#if defined(__x86_64__)
#include <immintrin.h>

#include "ops/cast_dispatch.h"

#define CKPT_TARGET_AVX2 __attribute__((target("avx2,f16c")))

namespace ckpt::ops::detail {
namespace {

template <FloatFormat I>
CKPT_TARGET_AVX2 inline __m256 load8(const uint8_t* p) {
  if constexpr (I == FloatFormat::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (I == FloatFormat::kF64) {
    const __m128 lo = _mm256_cvtpd_ps(_mm256_loadu_pd(reinterpret_cast<const double*>(p)));
    const __m128 hi = _mm256_cvtpd_ps(_mm256_loadu_pd(reinterpret_cast<const double*>(p + 32)));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
  } else if constexpr (I == FloatFormat::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
}

template <FloatFormat O>
CKPT_TARGET_AVX2 inline void store8(uint8_t* p, __m256 v, uint16_t bf16_nan) {
  if constexpr (O == FloatFormat::kF32) {
    _mm256_storeu_ps(reinterpret_cast<float*>(p), v);
  } else if constexpr (O == FloatFormat::kF16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), odd), 16);
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(_mm256_set1_epi32(bf16_nan)), nan));
    // Pack 8 x u32 (all <= 0xFFFF) to 8 x u16: packus works per 128-bit lane, then gather the
    // two lanes' low halves.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
}

template <FloatFormat I, FloatFormat O>
CKPT_TARGET_AVX2 void run(const uint8_t* src, uint8_t* dst, uint64_t n) {
  constexpr uint64_t kIn = sizeof(float_bits_t<I>), kOut = sizeof(float_bits_t<O>);
  if constexpr (I == O) {  // a copy (the vector round trip would remap NaNs)
    std::memcpy(dst, src, n * kIn);
    return;
  }
  uint64_t k = 0;
  for (; k + 8 <= n; k += 8) store8<O>(dst + k * kOut, load8<I>(src + k * kIn), bf16_nan_from(I));
  reference_loop<I, O>(src + k * kIn, dst + k * kOut, n - k);
}

}  // namespace

void cast_avx2(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n) {
  visit_cast_pair(in, out, [&]<FloatFormat I, FloatFormat O>() { run<I, O>(src, dst, n); });
}

}  // namespace ckpt::ops::detail
#endif
