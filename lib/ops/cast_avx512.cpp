// The AVX-512F cast path: 16 elements per step through a float32 vector, the tail through the
// scalar reference. Hardware conversions are used only where their results equal the reference
// bit for bit (vcvtph2ps, vcvtps2ph and vcvtpd2ps round to nearest even under the default MXCSR
// and map NaNs as torch does); f32 -> bf16 is integer rounding, since vcvtneps2bf16 flushes
// subnormals. Functions here carry the target attribute and internal linkage only, so no
// AVX-512 code can be picked by the linker for callers on other CPUs.
#if defined(__x86_64__)
// GCC 12 warns inside its own avx512fintrin.h (the _mm512_undefined_* pass-through operands).
#if !defined(__clang__)  // clang has no such warning group and would warn about the pragma
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "ops/cast_dispatch.h"

#define CKPT_TARGET_AVX512 __attribute__((target("avx512f")))

namespace ckpt::ops::detail {
namespace {

template <FloatFormat I>
CKPT_TARGET_AVX512 inline __m512 load16(const uint8_t* p) {
  if constexpr (I == FloatFormat::kF32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (I == FloatFormat::kF64) {
    const __m256 lo = _mm512_cvtpd_ps(_mm512_loadu_pd(p));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_loadu_pd(p + 64));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
  } else if constexpr (I == FloatFormat::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
}

template <FloatFormat O>
CKPT_TARGET_AVX512 inline void store16(uint8_t* p, __m512 v, uint16_t bf16_nan) {
  if constexpr (O == FloatFormat::kF32) {
    _mm512_storeu_ps(p, v);
  } else if constexpr (O == FloatFormat::kF16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    // (u + 0x7FFF + ((u >> 16) & 1)) >> 16, NaN lanes replaced: ops::f32_to_bf16_with_nan.
    const __m512i u = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(bf16_nan));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
}

template <FloatFormat I, FloatFormat O>
CKPT_TARGET_AVX512 void run(const uint8_t* src, uint8_t* dst, uint64_t n) {
  constexpr uint64_t kIn = sizeof(float_bits_t<I>), kOut = sizeof(float_bits_t<O>);
  if constexpr (I == O) {  // a copy (the vector round trip would remap NaNs)
    std::memcpy(dst, src, n * kIn);
    return;
  }
  uint64_t k = 0;
  for (; k + 16 <= n; k += 16) store16<O>(dst + k * kOut, load16<I>(src + k * kIn), bf16_nan_from(I));
  reference_loop<I, O>(src + k * kIn, dst + k * kOut, n - k);
}

}  // namespace

void cast_avx512(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n) {
  visit_cast_pair(in, out, [&]<FloatFormat I, FloatFormat O>() { run<I, O>(src, dst, n); });
}

}  // namespace ckpt::ops::detail
#endif
