// The AVX-512 INT4 loop: per group, one scan (magnitude-bit max for amax and non-finite values,
// float min/max for the asymmetric range), the parameters from the shared scalar math
// (ops/int4_math.h), then 16 columns at a time: widen, divide, round half to even, add the zero,
// clamp, narrow to bytes, and pair bytes into nibbles with one vpmaddubsw (c0 + 16 c1) and a
// pack. Tested against int4_quantize_reference bit for bit. Functions carry the target
// attribute and internal linkage only, so no AVX-512 code can be picked for other CPUs.
#if defined(__x86_64__)
// GCC 12 warns inside its own avx512fintrin.h (the _mm512_undefined_* pass-through operands).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "ops/float_bits.h"
#include "ops/int4_quant_detail.h"

#define CKPT_TARGET_INT4_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

namespace ckpt::ops::detail {
namespace {

// Up to 16 elements (lanes outside `m` read as 0) widened to float32.
template <DType D>
CKPT_TARGET_INT4_AVX512 inline __m512 load16(const uint8_t* p, __mmask16 m) {
  if constexpr (D == DType::F32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if constexpr (D == DType::F16) return _mm512_cvtph_ps(h);
    else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

CKPT_TARGET_INT4_AVX512 inline __mmask16 first_lanes(uint64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

template <DType D, bool kStats>
CKPT_TARGET_INT4_AVX512 Int4Issue quantize(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src,
                                           uint64_t kb, uint64_t ke, Int4Params* params, uint32_t* words,
                                           uint64_t ws, Fp8ErrorStats* stats) {
  constexpr size_t esize = D == DType::F32 ? 4 : 2;
  const uint64_t ng = src.cols / geo.group, G = geo.group;
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512 zero = _mm512_setzero_ps(), fifteen = _mm512_set1_ps(15.0f);
  const __m128i nibble_pairs = _mm_set1_epi16(0x1001);  // bytes {1, 16}: c0 + 16 c1
  for (uint64_t r = 0; r < src.rows; ++r) {
    uint32_t* out = words + r * ws;
    const uint8_t* row = src.data + r * src.stride * esize;
    for (uint64_t j = 0; j < ng; ++j) {
      const uint64_t g0 = src.col0 + j * G;
      const uint8_t* in = row + (g0 - src.col0) * esize;
      __m512i mb = _mm512_setzero_si512();
      __m512 lo = zero, hi = zero;
      for (uint64_t i = 0; i < G; i += 16) {
        const __m512 x = load16<D>(in + i * esize, first_lanes(G - i));
        mb = _mm512_max_epu32(mb, _mm512_and_si512(_mm512_castps_si512(x), magnitude));
        lo = _mm512_min_ps(lo, x);
        hi = _mm512_max_ps(hi, x);
      }
      const uint32_t mbits = _mm512_reduce_max_epu32(mb);
      if (mbits >= 0x7F800000u) {  // the first non-finite element, in column order
        uint64_t i = 0;
        while (std::isfinite(load_as_f32(in, D, i))) ++i;
        return int4_issue(Int4Issue::kNonFinite, src.row0 + r, g0 + i, load_as_f32(in, D, i));
      }
      const float amax = f32_from_bits(mbits), flo = _mm512_reduce_min_ps(lo), fhi = _mm512_reduce_max_ps(hi);
      Int4Params& p = params[r * ng + j];
      if (!int4_group_params(s, amax, flo, fhi, &p))
        return int4_issue(Int4Issue::kScaleOverflow, src.row0 + r, g0, s.symmetric ? amax : fhi - flo);
      const __m512 vs = _mm512_set1_ps(p.scale), vz = _mm512_set1_ps(static_cast<float>(p.zero));
      __m512 acc_e = zero, acc_x = zero, max_e = zero;
      const uint64_t a = std::max(kb, g0), b = std::min(ke, g0 + G);
      for (uint64_t k = a; k < b; k += 16) {
        const __mmask16 m = first_lanes(b - k);
        const __m512 x = load16<D>(in + (k - g0) * esize, m);
        const __m512 v = _mm512_roundscale_ps(_mm512_div_ps(x, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, vz), zero), fifteen);
        const __m128i bytes = _mm512_maskz_cvtepi32_epi8(m, _mm512_cvttps_epi32(t));
        const __m128i packed = _mm_packus_epi16(_mm_maddubs_epi16(bytes, nibble_pairs), _mm_setzero_si128());
        uint32_t* o = out + (k - kb) / 8;
        if (b - k > 8) _mm_storel_epi64(reinterpret_cast<__m128i*>(o), packed);
        else *o = static_cast<uint32_t>(_mm_cvtsi128_si32(packed));
        if constexpr (kStats) {
          // Lanes outside m: x = 0 and t = z, so e = 0.
          const __m512 e = _mm512_sub_ps(x, _mm512_mul_ps(_mm512_sub_ps(t, vz), vs));
          acc_e = _mm512_fmadd_ps(e, e, acc_e);
          acc_x = _mm512_fmadd_ps(x, x, acc_x);
          max_e = _mm512_max_ps(max_e, _mm512_abs_ps(e));
        }
      }
      if constexpr (kStats) {
        stats->sum_sq_err += static_cast<double>(_mm512_reduce_add_ps(acc_e));
        stats->sum_sq += static_cast<double>(_mm512_reduce_add_ps(acc_x));
        stats->max_abs_err = std::max(stats->max_abs_err, static_cast<double>(_mm512_reduce_max_ps(max_e)));
      }
    }
  }
  return {};
}

template <DType D>
Int4Issue quantize_dtype(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t kb, uint64_t ke,
                         Int4Params* params, uint32_t* words, uint64_t ws, Fp8ErrorStats* stats) {
  if (stats) return quantize<D, true>(s, geo, src, kb, ke, params, words, ws, stats);
  return quantize<D, false>(s, geo, src, kb, ke, params, words, ws, nullptr);
}

}  // namespace

bool int4_avx512_on_this_cpu() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

Int4Issue int4_quantize_avx512(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t kb,
                               uint64_t ke, Int4Params* params, uint32_t* words, uint64_t ws, Fp8ErrorStats* stats) {
  switch (src.dtype) {
    case DType::BF16: return quantize_dtype<DType::BF16>(s, geo, src, kb, ke, params, words, ws, stats);
    case DType::F16: return quantize_dtype<DType::F16>(s, geo, src, kb, ke, params, words, ws, stats);
    default: return quantize_dtype<DType::F32>(s, geo, src, kb, ke, params, words, ws, stats);
  }
}

}  // namespace ckpt::ops::detail

#else  // not x86-64: no AVX-512 path

#include "ops/int4_quant_detail.h"

namespace ckpt::ops::detail {
bool int4_avx512_on_this_cpu() { return false; }
Int4Issue int4_quantize_avx512(const Int4Scheme&, const Int4Geometry&, const Int4Source&, uint64_t, uint64_t,
                               Int4Params*, uint32_t*, uint64_t, Fp8ErrorStats*) {
  return {};
}
}  // namespace ckpt::ops::detail

#endif
