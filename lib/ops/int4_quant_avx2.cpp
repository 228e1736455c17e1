// The AVX2 INT4 loop (AVX2 + F16C + FMA, every x86-64 CPU since Haswell / Zen 1), for CPUs without
// AVX-512: the steps of int4_quant_avx512.cpp at 8 lanes. Batches of 8 groups of a row: one scan
// per group (magnitude-bit max for amax and non-finite values, float min/max for the asymmetric
// range), the 8 groups' parameters in one vector (the same IEEE steps as ops/int4_math.h), then 32
// columns at a time: divide, round half to even, add the zero, narrow to bytes with saturation
// (which clamps below 0), clamp above 15, and pair bytes into nibbles with one vpmaddubsw
// (c0 + 16 c1). Taken only where groups are a multiple of 8 (then every column range is whole
// vectors: its ends are group or word boundaries). Tested against int4_quantize_reference bit for
// bit on every CPU that has AVX2 (tests/unit/test_int4_quant.cpp). Internal linkage and the target
// attribute only, so no AVX2 code can be picked for other CPUs.
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "ops/float_bits.h"
#include "ops/int4_quant_detail.h"

#define CKPT_TARGET_INT4_AVX2 __attribute__((target("avx2,f16c,fma")))

namespace ckpt::ops::detail {
namespace {

// 8 elements widened to float32.
template <DType D>
CKPT_TARGET_INT4_AVX2 inline __m256 load8(const uint8_t* p) {
  if constexpr (D == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (D == DType::F16) return _mm256_cvtph_ps(h);
    else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// Horizontal reductions of one vector.
CKPT_TARGET_INT4_AVX2 inline uint32_t hmax_epu32(__m256i v) {
  __m128i b = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  b = _mm_max_epu32(b, _mm_shuffle_epi32(b, 0x4E));
  b = _mm_max_epu32(b, _mm_shuffle_epi32(b, 0xB1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(b));
}
CKPT_TARGET_INT4_AVX2 inline float hmin_ps(__m256 v) {
  __m128 b = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_min_ps(b, _mm_shuffle_ps(b, b, 0x4E));
  b = _mm_min_ps(b, _mm_shuffle_ps(b, b, 0xB1));
  return _mm_cvtss_f32(b);
}
CKPT_TARGET_INT4_AVX2 inline float hmax_ps(__m256 v) {
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_max_ps(b, _mm_shuffle_ps(b, b, 0x4E));
  b = _mm_max_ps(b, _mm_shuffle_ps(b, b, 0xB1));
  return _mm_cvtss_f32(b);
}
CKPT_TARGET_INT4_AVX2 inline double hsum_pd(__m256d v) {
  __m128d b = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(b, _mm_unpackhi_pd(b, b)));
}
CKPT_TARGET_INT4_AVX2 inline __m256d widen_sum(__m256 v) {
  return _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

// The parameters of up to 8 groups at once, lane i from amax[i] / lo[i] / hi[i]: the vector form
// of int4_group_params (ops/int4_math.h), as batch_params of int4_quant_avx512.cpp. Returns the
// lanes whose scale overflowed, as a bit mask.
struct ParamConsts {
  int type;
  bool symmetric;
  float smallest, zero_scale, zero_zero;
};

CKPT_TARGET_INT4_AVX2 inline unsigned batch_params(const ParamConsts& c, const float* amax, const float* lo,
                                                   const float* hi, float* scale, float* zero) {
  const __m256 a = _mm256_loadu_ps(amax), l = _mm256_loadu_ps(lo), h = _mm256_loadu_ps(hi), z0 = _mm256_setzero_ps();
  __m256 s = c.symmetric ? _mm256_div_ps(a, _mm256_set1_ps(7.5f)) : _mm256_div_ps(_mm256_sub_ps(h, l), _mm256_set1_ps(15.0f));
  if (c.type == kInt4ScaleF16) {
    s = _mm256_cvtph_ps(_mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else if (c.type == kInt4ScaleBF16) {
    const __m256i u = _mm256_castps_si256(s);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), odd);
    s = _mm256_castsi256_ps(_mm256_and_si256(r, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  s = _mm256_blendv_ps(s, _mm256_set1_ps(c.smallest), _mm256_cmp_ps(s, z0, _CMP_EQ_OQ));
  const __m256 degenerate = c.symmetric ? _mm256_cmp_ps(a, z0, _CMP_EQ_OQ) : _mm256_cmp_ps(h, l, _CMP_EQ_OQ);
  s = _mm256_blendv_ps(s, _mm256_set1_ps(c.zero_scale), degenerate);
  __m256 z = _mm256_set1_ps(8.0f);
  if (!c.symmetric) {
    const __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_sub_ps(z0, l), s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    z = _mm256_min_ps(_mm256_max_ps(q, z0), _mm256_set1_ps(15.0f));
  }
  z = _mm256_blendv_ps(z, _mm256_set1_ps(c.zero_zero), degenerate);
  _mm256_storeu_ps(scale, s);
  _mm256_storeu_ps(zero, z);
  return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s, _mm256_set1_ps(3.4e38f), _CMP_NLT_UQ)));
}

template <DType D, bool kStats>
CKPT_TARGET_INT4_AVX2 Int4Issue quantize(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src,
                                         uint64_t kb, uint64_t ke, Int4Params* params, uint32_t* words, uint64_t ws,
                                         Fp8ErrorStats* stats) {
  constexpr size_t esize = D == DType::F32 ? 4 : 2;
  const uint64_t ng = src.cols / geo.group, G = geo.group;
  const int type = int4_scale_type(s.scale_dtype), format = int4_format_id(s.format);
  const ParamConsts pc{type, s.symmetric, int4_stored_scale(0.0f, type), int4_zero_group_scale(format, type),
                       static_cast<float>(int4_zero_group_zero(format, s.symmetric))};
  const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i nibble_pairs = _mm256_set1_epi16(0x1001);  // bytes {1, 16}: c0 + 16 c1
  const __m256i byte_max = _mm256_set1_epi8(15);
  // packus leaves the bytes of 4 vectors as dwords q0lo q1lo q2lo q3lo | q0hi q1hi q2hi q3hi.
  const __m256i unshuffle = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  alignas(32) float amax[8], lo[8], hi[8], scale[8], zero[8];
  // Error sums: float32 per group (in vectors), widened into double vectors after each group;
  // reduced across lanes once, at the end.
  __m256d sum_e2 = _mm256_setzero_pd(), sum_x2 = sum_e2;
  __m256 max_abs = _mm256_setzero_ps();
  for (uint64_t r = 0; r < src.rows; ++r) {
    uint32_t* out = words + r * ws;
    const uint8_t* row = src.data + r * src.stride * esize;
    for (uint64_t j0 = 0; j0 < ng; j0 += 8) {
      const uint64_t nb = std::min<uint64_t>(8, ng - j0);
      // 1. Scan each group.
      uint32_t bad = 0;
      for (uint64_t b = 0; b < nb; ++b) {
        const uint8_t* in = row + (j0 + b) * G * esize;
        __m256i mb = _mm256_setzero_si256();
        __m256 l = _mm256_setzero_ps(), h = l;
        for (uint64_t i = 0; i < G; i += 8) {
          if ((i * esize) % 64 == 0) int4_prefetch_ahead(in + i * esize);
          const __m256 x = load8<D>(in + i * esize);
          mb = _mm256_max_epu32(mb, _mm256_and_si256(_mm256_castps_si256(x), magnitude));
          if (!s.symmetric) {
            l = _mm256_min_ps(l, x);
            h = _mm256_max_ps(h, x);
          }
        }
        const uint32_t m = hmax_epu32(mb);
        bad |= m >= 0x7F800000u;
        amax[b] = f32_from_bits(m);
        if (!s.symmetric) {
          lo[b] = hmin_ps(l);
          hi[b] = hmax_ps(h);
        } else {
          lo[b] = hi[b] = 0.0f;
        }
      }
      for (uint64_t b = nb; b < 8; ++b) amax[b] = lo[b] = hi[b] = 0.0f;
      // 2. Parameters of the 8 groups at once.
      const unsigned overflow = batch_params(pc, amax, lo, hi, scale, zero) & ((1u << nb) - 1);
      if (bad || overflow) return int4_batch_issue(s, geo, src, r, j0, nb, overflow, amax, lo, hi);
      int4_store_batch(params + r * ng, j0, nb, scale, zero);
      // 3. Codes of each group's columns inside [kb, ke), 32 at a time (whole words of 8: the
      //    range's ends are multiples of 8).
      for (uint64_t b = 0; b < nb; ++b) {
        const uint64_t g0 = src.col0 + (j0 + b) * G;
        const uint64_t a = std::max(kb, g0), e = std::min(ke, g0 + G);
        if (a >= e) continue;
        const uint8_t* in = row + (j0 + b) * G * esize;
        const __m256 vs = _mm256_set1_ps(scale[b]);
        const __m256i vz = _mm256_set1_epi32(static_cast<int>(zero[b]));
        const __m256 d_lo = _mm256_set1_ps(-zero[b]), d_hi = _mm256_set1_ps(15.0f - zero[b]);
        __m256 acc_e = _mm256_setzero_ps(), acc_x = acc_e, max_e = acc_e;
        // Codes of 8 columns as int32 (RNE(x / S) + z, not yet clamped).
        auto codes8 = [&](uint64_t k) CKPT_TARGET_INT4_AVX2 {
          const __m256 x = load8<D>(in + (k - g0) * esize);
          const __m256 v = _mm256_round_ps(_mm256_div_ps(x, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          if constexpr (kStats) {
            // e = x - clamp(v, -z, 15 - z) · S: the dequantization's error (one FMA).
            const __m256 err = _mm256_fnmadd_ps(_mm256_min_ps(_mm256_max_ps(v, d_lo), d_hi), vs, x);
            acc_e = _mm256_fmadd_ps(err, err, acc_e);
            acc_x = _mm256_fmadd_ps(x, x, acc_x);
            max_e = _mm256_max_ps(max_e, _mm256_and_ps(err, abs_mask));
          }
          return _mm256_add_epi32(_mm256_cvttps_epi32(v), vz);
        };
        for (uint64_t k = a; k < e; k += 32) {
          const uint64_t nw = std::min<uint64_t>(4, (e - k) / 8);
          const __m256i zero8 = _mm256_setzero_si256();
          const __m256i q0 = codes8(k);
          const __m256i q1 = nw > 1 ? codes8(k + 8) : zero8;
          const __m256i q2 = nw > 2 ? codes8(k + 16) : zero8;
          const __m256i q3 = nw > 3 ? codes8(k + 24) : zero8;
          // int32 -> int16 -> uint8 with saturation (negative codes become 0), then <= 15.
          __m256i c = _mm256_packus_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
          c = _mm256_min_epu8(_mm256_permutevar8x32_epi32(c, unshuffle), byte_max);
          const __m256i pairs = _mm256_maddubs_epi16(c, nibble_pairs);  // 16 x (c0 + 16 c1)
          const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(pairs, pairs), 0x08);
          const __m128i words4 = _mm256_castsi256_si128(packed);
          if (nw == 4) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + (k - kb) / 8), words4);
          } else {
            const __m128i m = _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(nw)), _mm_setr_epi32(0, 1, 2, 3));
            _mm_maskstore_epi32(reinterpret_cast<int*>(out + (k - kb) / 8), m, words4);
          }
        }
        if constexpr (kStats) {
          sum_e2 = _mm256_add_pd(sum_e2, widen_sum(acc_e));
          sum_x2 = _mm256_add_pd(sum_x2, widen_sum(acc_x));
          max_abs = _mm256_max_ps(max_abs, max_e);
        }
      }
    }
  }
  if constexpr (kStats) {
    stats->sum_sq_err += hsum_pd(sum_e2);
    stats->sum_sq += hsum_pd(sum_x2);
    stats->max_abs_err = std::max(stats->max_abs_err, static_cast<double>(hmax_ps(max_abs)));
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

bool int4_avx2_on_this_cpu() {
  __builtin_cpu_init();
  // F16C comes with every AVX2 CPU (see ops/cast.cpp); FMA is checked as well.
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

Int4Issue int4_quantize_avx2(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t kb,
                             uint64_t ke, Int4Params* params, uint32_t* words, uint64_t ws, Fp8ErrorStats* stats) {
  switch (src.dtype) {
    case DType::BF16: return quantize_dtype<DType::BF16>(s, geo, src, kb, ke, params, words, ws, stats);
    case DType::F16: return quantize_dtype<DType::F16>(s, geo, src, kb, ke, params, words, ws, stats);
    default: return quantize_dtype<DType::F32>(s, geo, src, kb, ke, params, words, ws, stats);
  }
}

}  // namespace ckpt::ops::detail

#else  // not x86-64: no AVX2 path

#include "ops/int4_quant_detail.h"

namespace ckpt::ops::detail {
bool int4_avx2_on_this_cpu() { return false; }
Int4Issue int4_quantize_avx2(const Int4Scheme&, const Int4Geometry&, const Int4Source&, uint64_t, uint64_t,
                             Int4Params*, uint32_t*, uint64_t, Fp8ErrorStats*) {
  return {};
}
}  // namespace ckpt::ops::detail

#endif
