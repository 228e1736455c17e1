// The AVX-512 INT4 loop, in batches of 16 groups of a row: one scan per group (magnitude-bit max
// for amax and non-finite values, float min/max for the asymmetric range), the 16 groups'
// parameters in one vector (the same IEEE steps as the scalar math of ops/int4_math.h), then 32
// columns at a time: widen, divide, round half to even to an integer, add the zero, narrow to
// bytes, clamp, and pair bytes into nibbles with one vpmaddubsw (c0 + 16 c1). Tested against int4_quantize_reference bit for bit. Functions carry the target
// attribute and internal linkage only, so no AVX-512 code can be picked for other CPUs.
#if defined(__x86_64__)
// GCC 12 warns inside its own avx512fintrin.h (the _mm512_undefined_* pass-through operands).
#if !defined(__clang__)  // clang has no such warning group and would warn about the pragma
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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

// Horizontal reductions of one vector.
CKPT_TARGET_INT4_AVX512 inline uint32_t hmax_epu32(__m512i v) {
  __m256i a = _mm256_max_epu32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i b = _mm_max_epu32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  b = _mm_max_epu32(b, _mm_shuffle_epi32(b, 0x4E));
  b = _mm_max_epu32(b, _mm_shuffle_epi32(b, 0xB1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(b));
}

// The group parameters of up to 16 groups at once, lane i from amax[i] / lo[i] / hi[i]: the
// vector form of int4_group_params (ops/int4_math.h), the same IEEE operations: the division,
// RNE to the scale type (vcvtps2ph for F16, the carry trick for BF16), the zero floor, the
// all-zero groups' constants, the asymmetric zero. Returns the lanes whose scale overflowed.
struct ParamConsts {
  int type;
  bool symmetric;
  __m512 smallest, zero_scale, zero_zero;
};

CKPT_TARGET_INT4_AVX512 inline __mmask16 batch_params(const ParamConsts& c, const float* amax, const float* lo,
                                                      const float* hi, float* scale, float* zero) {
  const __m512 a = _mm512_loadu_ps(amax), l = _mm512_loadu_ps(lo), h = _mm512_loadu_ps(hi);
  __m512 s = c.symmetric ? _mm512_div_ps(a, _mm512_set1_ps(7.5f)) : _mm512_div_ps(_mm512_sub_ps(h, l), _mm512_set1_ps(15.0f));
  if (c.type == kInt4ScaleF16) {
    s = _mm512_cvtph_ps(_mm512_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else if (c.type == kInt4ScaleBF16) {
    const __m512i u = _mm512_castps_si512(s);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd);
    s = _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  s = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_EQ_OQ), s, c.smallest);
  const __mmask16 degenerate = c.symmetric ? _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_EQ_OQ)
                                           : _mm512_cmp_ps_mask(h, l, _CMP_EQ_OQ);
  s = _mm512_mask_blend_ps(degenerate, s, c.zero_scale);
  __m512 z = _mm512_set1_ps(8.0f);
  if (!c.symmetric) {
    const __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_sub_ps(_mm512_setzero_ps(), l), s),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    z = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), _mm512_set1_ps(15.0f));
  }
  z = _mm512_mask_blend_ps(degenerate, z, c.zero_zero);
  _mm512_storeu_ps(scale, s);
  _mm512_storeu_ps(zero, z);
  return _mm512_cmp_ps_mask(s, _mm512_set1_ps(3.4e38f), _CMP_NLT_UQ);
}

template <DType D, bool kStats>
CKPT_TARGET_INT4_AVX512 Int4Issue quantize(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src,
                                           uint64_t kb, uint64_t ke, Int4Params* params, uint32_t* words,
                                           uint64_t ws, Fp8ErrorStats* stats) {
  constexpr size_t esize = D == DType::F32 ? 4 : 2;
  const uint64_t ng = src.cols / geo.group, G = geo.group;
  const int type = int4_scale_type(s.scale_dtype), format = int4_format_id(s.format);
  const ParamConsts pc{type, s.symmetric, _mm512_set1_ps(int4_stored_scale(0.0f, type)),
                       _mm512_set1_ps(int4_zero_group_scale(format, type)),
                       _mm512_set1_ps(static_cast<float>(int4_zero_group_zero(format, s.symmetric)))};
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const __m256i nibble_pairs = _mm256_set1_epi16(0x1001);  // bytes {1, 16}: c0 + 16 c1
  const __m256i byte_max = _mm256_set1_epi8(15);
  alignas(64) float amax[16], lo[16], hi[16], scale[16], zero[16];
  // Error sums: float32 per group (in vectors), widened into double vectors after each group;
  // reduced across lanes once, at the end.
  __m512d sum_e2 = _mm512_setzero_pd(), sum_x2 = sum_e2;
  __m512 max_abs = _mm512_setzero_ps();
  for (uint64_t r = 0; r < src.rows; ++r) {
    uint32_t* out = words + r * ws;
    const uint8_t* row = src.data + r * src.stride * esize;
    for (uint64_t j0 = 0; j0 < ng; j0 += 16) {
      const uint64_t nb = std::min<uint64_t>(16, ng - j0);
      // 1. Scan each group: magnitude-bit max (amax, and NaN/Inf above every finite value), and
      //    for the asymmetric range min / max with 0 included.
      uint32_t bad = 0;
      for (uint64_t b = 0; b < nb; ++b) {
        const uint8_t* in = row + (j0 + b) * G * esize;
        __m512i mb = _mm512_setzero_si512();
        __m512 l = _mm512_setzero_ps(), h = l;
        for (uint64_t i = 0; i < G; i += 16) {
          if ((i * esize) % 64 == 0) int4_prefetch_ahead(in + i * esize);
          const __m512 x = load16<D>(in + i * esize, first_lanes(G - i));
          mb = _mm512_max_epu32(mb, _mm512_and_si512(_mm512_castps_si512(x), magnitude));
          if (!s.symmetric) {
            l = _mm512_min_ps(l, x);
            h = _mm512_max_ps(h, x);
          }
        }
        const uint32_t m = hmax_epu32(mb);
        bad |= m >= 0x7F800000u;
        amax[b] = f32_from_bits(m);
        if (!s.symmetric) {
          lo[b] = _mm512_reduce_min_ps(l);
          hi[b] = _mm512_reduce_max_ps(h);
        } else {
          lo[b] = hi[b] = 0.0f;
        }
      }
      for (uint64_t b = nb; b < 16; ++b) amax[b] = lo[b] = hi[b] = 0.0f;
      // 2. Parameters of the 16 groups at once.
      const __mmask16 overflow = batch_params(pc, amax, lo, hi, scale, zero) & static_cast<__mmask16>((1u << nb) - 1);
      if (bad || overflow) return int4_batch_issue(s, geo, src, r, j0, nb, overflow, amax, lo, hi);
      int4_store_batch(params + r * ng, j0, nb, scale, zero);
      // 3. Codes of each group's columns inside [kb, ke), 32 at a time: RNE(x / S) as an integer
      //    (|x / S| <= 16: S is at least the range over 7.5 or 15, up to its rounding), plus z,
      //    narrowed to bytes, clamped to [0, 15], paired into nibbles, 4 words stored.
      for (uint64_t b = 0; b < nb; ++b) {
        const uint64_t g0 = src.col0 + (j0 + b) * G;
        const uint64_t a = std::max(kb, g0), e = std::min(ke, g0 + G);
        if (a >= e) continue;
        const uint8_t* in = row + (j0 + b) * G * esize;
        const __m512 vs = _mm512_set1_ps(scale[b]);
        const __m512i vz = _mm512_set1_epi32(static_cast<int>(zero[b]));
        __m512 acc_e = _mm512_setzero_ps(), acc_x = acc_e, max_e = acc_e, min_e = acc_e;
        const __m512 d_lo = _mm512_set1_ps(-zero[b]), d_hi = _mm512_set1_ps(15.0f - zero[b]);
        auto codes16 = [&](uint64_t k, __mmask16 m) CKPT_TARGET_INT4_AVX512 {
          const __m512 x = load16<D>(in + (k - g0) * esize, m);
          __m512i q;
          if constexpr (kStats) {
            // q - z clamped is the dequantization's integer: e = x - (q - z)·S (one FMA). Lanes
            // outside m: x = 0 and q = z, so e = 0.
            const __m512 v = _mm512_roundscale_ps(_mm512_div_ps(x, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm512_add_epi32(_mm512_cvttps_epi32(v), vz);
            const __m512 err = _mm512_fnmadd_ps(_mm512_min_ps(_mm512_max_ps(v, d_lo), d_hi), vs, x);
            acc_e = _mm512_fmadd_ps(err, err, acc_e);
            acc_x = _mm512_fmadd_ps(x, x, acc_x);
            max_e = _mm512_max_ps(max_e, err);
            min_e = _mm512_min_ps(min_e, err);
          } else {
            q = _mm512_add_epi32(
                _mm512_cvt_roundps_epi32(_mm512_div_ps(x, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
          }
          return _mm512_maskz_cvtsepi32_epi8(m, q);  // lanes outside m: 0 (nibbles past K)
        };
        for (uint64_t k = a; k < e; k += 32) {
          const uint64_t left = e - k;
          const __m128i c0 = codes16(k, first_lanes(left));
          const __m128i c1 = left > 16 ? codes16(k + 16, first_lanes(left - 16)) : _mm_setzero_si128();
          __m256i c = _mm256_inserti128_si256(_mm256_castsi128_si256(c0), c1, 1);
          c = _mm256_min_epi8(_mm256_max_epi8(c, _mm256_setzero_si256()), byte_max);
          const __m128i packed = _mm256_cvtepi16_epi8(_mm256_maddubs_epi16(c, nibble_pairs));
          const uint64_t nw = std::min<uint64_t>(4, (left + 7) / 8);
          _mm_mask_storeu_epi32(out + (k - kb) / 8, static_cast<__mmask8>((1u << nw) - 1), packed);
        }
        if constexpr (kStats) {
          sum_e2 = _mm512_add_pd(sum_e2, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(acc_e)),
                                                       _mm512_cvtps_pd(_mm512_extractf32x8_ps(acc_e, 1))));
          sum_x2 = _mm512_add_pd(sum_x2, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(acc_x)),
                                                       _mm512_cvtps_pd(_mm512_extractf32x8_ps(acc_x, 1))));
          max_abs = _mm512_max_ps(max_abs, _mm512_max_ps(max_e, _mm512_sub_ps(_mm512_setzero_ps(), min_e)));
        }
      }
    }
  }
  if constexpr (kStats) {
    stats->sum_sq_err += _mm512_reduce_add_pd(sum_e2);
    stats->sum_sq += _mm512_reduce_add_pd(sum_x2);
    stats->max_abs_err = std::max(stats->max_abs_err, static_cast<double>(_mm512_reduce_max_ps(max_abs)));
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
