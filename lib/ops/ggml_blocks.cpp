#include "ops/ggml_blocks.h"

#include <immintrin.h>

#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "ops/ggml_blocks_detail.h"

namespace ckpt::ops {

namespace {

// ggml-org/ggml src/ggml.c `type_traits` (blck_size, type_size) for the types written here.
constexpr std::array<GgmlTypeInfo, 11> kTypes{{
    {GgmlType::F32, "F32", 1, 4},
    {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},
    {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},
    {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},
    {GgmlType::Q4_K, "Q4_K", 256, 144},
    {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},
    {GgmlType::BF16, "BF16", 1, 2},
}};

// Q8_0 with AVX2: the same float32 operations as the reference (an exact max, one product per
// element) and roundf's ties-away-from-zero rebuilt from a truncation, so the bytes are equal.
__attribute__((target("avx2,f16c"))) void q8_0_avx2(const float* x, uint8_t* y, uint64_t nb) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256i low_byte = _mm256_set1_epi32(0xFF);
  for (uint64_t i = 0; i < nb; ++i, x += 32, y += 34) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = ggml_fp32_to_fp16(d);
    y[0] = static_cast<uint8_t>(dh);
    y[1] = static_cast<uint8_t>(dh >> 8);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 p = _mm256_mul_ps(v[k], vid);
      const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 frac = _mm256_andnot_ps(sign_mask, _mm256_sub_ps(p, t));
      const __m256 bump = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ),
                                        _mm256_or_ps(one, _mm256_and_ps(sign_mask, p)));
      // The reference stores the low byte of the int conversion (also for the 0x80000000 an
      // infinite x*id gives when d is subnormal): keep the low byte, then pack without saturating.
      q[k] = _mm256_and_si256(_mm256_cvttps_epi32(_mm256_add_ps(t, bump)), low_byte);
    }
    const __m256i w01 = _mm256_packus_epi32(q[0], q[1]);
    const __m256i w23 = _mm256_packus_epi32(q[2], q[3]);
    __m256i b = _mm256_packus_epi16(w01, w23);
    // The packs interleave 128-bit lanes: restore element order.
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 2), b);
  }
}

// The Q4_K/Q5_K sub-block search (KQuantSearch::scale_min) with AVX2, the super-block's 8 sub-blocks
// in the 8 lanes: each lane runs make_qkx2_quants's float32 operations on its own sub-block in
// ggml's order (its sums element after element; no fused multiply-add, which this target lacks and
// this file is compiled without), and its branches become per-lane selects, so each lane's scale,
// min and quants are the reference's bit for bit. The search was all of Q4_K's time (and Q5_K's):
// 21 (16) trial scales, each a pass over the sub-block.
// ggml's nearest_int: round half to even through the float32 mantissa.
__attribute__((target("avx2"))) inline __m256i nearest_int(__m256 v) {
  const __m256i i = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
  return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

__attribute__((target("avx2"))) inline __m256i quant_clamped(__m256i nmax, __m256 v) {
  return _mm256_max_epi32(_mm256_setzero_si256(), _mm256_min_epi32(nmax, nearest_int(v)));
}

__attribute__((target("avx2"))) void scale_min_avx2(const float* x, int nmax, float rmin, int nstep, float* scales,
                                                     float* mins, uint8_t* L) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i vnmax = _mm256_set1_epi32(nmax);
  alignas(32) float t[32][8];  // t[i][j] = x[32 j + i]: element i of every sub-block
  for (int j = 0; j < 8; ++j)
    for (int i = 0; i < 32; ++i) t[i][j] = x[32 * j + i];
  __m256 xv[32], w[32];
  __m256 sum_x2 = zero;
  for (int i = 0; i < 32; ++i) {
    xv[i] = _mm256_load_ps(t[i]);
    sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xv[i], xv[i]));
  }
  const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.f)));
  for (int i = 0; i < 32; ++i) w[i] = _mm256_add_ps(av_x, _mm256_andnot_ps(sign, xv[i]));

  __m256 mn = xv[0], mx = xv[0], sum_w = w[0], sum_x = _mm256_mul_ps(w[0], xv[0]);
  for (int i = 1; i < 32; ++i) {
    mn = _mm256_min_ps(xv[i], mn);  // x < min ? x : min, as the reference's test
    mx = _mm256_max_ps(xv[i], mx);
    sum_w = _mm256_add_ps(sum_w, w[i]);
    sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w[i], xv[i]));
  }
  mn = _mm256_blendv_ps(mn, zero, _mm256_cmp_ps(mn, zero, _CMP_GT_OQ));  // keeps a -0, as `if (min > 0)`
  // Lanes whose sub-block is flat return before the search: their results are set at the end.
  const __m256 flat = _mm256_cmp_ps(mx, mn, _CMP_EQ_OQ);
  const __m256 flat_min = mn;
  __m256 scale;
  __m256i Lv[32], La[32];
  {
    const __m256 iscale = _mm256_div_ps(_mm256_set1_ps(static_cast<float>(nmax)), _mm256_sub_ps(mx, mn));
    scale = _mm256_div_ps(_mm256_set1_ps(1.f), iscale);
    __m256 best = zero;
    for (int i = 0; i < 32; ++i) {
      Lv[i] = quant_clamped(vnmax, _mm256_mul_ps(iscale, _mm256_sub_ps(xv[i], mn)));
      const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(Lv[i])), mn), xv[i]);
      best = _mm256_add_ps(best, _mm256_mul_ps(w[i], _mm256_mul_ps(diff, diff)));
    }
    for (int is = 0; is <= nstep; ++is) {
      // The trial's numerator in the reference's order and precision; `min` is the best so far.
      const float num = rmin + 0.1f * static_cast<float>(is) + static_cast<float>(nmax);
      const __m256 trial = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(mx, mn));
      __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
      for (int i = 0; i < 32; ++i) {
        La[i] = quant_clamped(vnmax, _mm256_mul_ps(trial, _mm256_sub_ps(xv[i], mn)));
        const __m256 lf = _mm256_cvtepi32_ps(La[i]);
        const __m256 wl = _mm256_mul_ps(w[i], lf);
        sum_l = _mm256_add_ps(sum_l, wl);
        sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf));
        sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xv[i]));
      }
      const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
      __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
      __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
      const __m256 min_pos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
      this_min = _mm256_blendv_ps(this_min, zero, min_pos);
      this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), min_pos);
      __m256 cur = zero;
      for (int i = 0; i < 32; ++i) {
        const __m256 diff =
            _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(La[i])), this_min), xv[i]);
        cur = _mm256_add_ps(cur, _mm256_mul_ps(w[i], _mm256_mul_ps(diff, diff)));
      }
      const __m256 better = _mm256_and_ps(_mm256_cmp_ps(D, zero, _CMP_GT_OQ), _mm256_cmp_ps(cur, best, _CMP_LT_OQ));
      if (_mm256_movemask_ps(better) == 0) continue;
      const __m256i take = _mm256_castps_si256(better);
      for (int i = 0; i < 32; ++i) Lv[i] = _mm256_blendv_epi8(Lv[i], La[i], take);
      best = _mm256_blendv_ps(best, cur, better);
      scale = _mm256_blendv_ps(scale, this_scale, better);
      mn = _mm256_blendv_ps(mn, this_min, better);
    }
  }
  _mm256_storeu_ps(scales, _mm256_blendv_ps(scale, zero, flat));
  _mm256_storeu_ps(mins, _mm256_xor_ps(_mm256_blendv_ps(mn, flat_min, flat), sign));
  const __m256i keep = _mm256_castps_si256(_mm256_xor_ps(flat, _mm256_castsi256_ps(_mm256_set1_epi32(-1))));
  alignas(32) int32_t q[32][8];
  for (int i = 0; i < 32; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(q[i]), _mm256_and_si256(Lv[i], keep));
  for (int j = 0; j < 8; ++j)
    for (int i = 0; i < 32; ++i) L[32 * j + i] = static_cast<uint8_t>(q[i][j]);
}

// The Q6_K sub-block search (KQuantSearch::scale, make_qx_quants(16, 32, ...)) with AVX2, 8 of the
// 16 sub-blocks at a time in the 8 lanes, each lane in the reference's float32 order as above.
__attribute__((target("avx2"))) void scale_avx2(const float* x, float* scales, int8_t* L) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i lo = _mm256_set1_epi32(-32), hi = _mm256_set1_epi32(31);
  for (int g = 0; g < 2; ++g) {
    const float* xg = x + 128 * g;
    alignas(32) float t[16][8];  // t[i][j] = element i of sub-block 8 g + j
    for (int j = 0; j < 8; ++j)
      for (int i = 0; i < 16; ++i) t[i][j] = xg[16 * j + i];
    __m256 xv[16], w[16];
    __m256 amax = zero, mx = zero;
    for (int i = 0; i < 16; ++i) {
      xv[i] = _mm256_load_ps(t[i]);
      w[i] = _mm256_mul_ps(xv[i], xv[i]);
      const __m256 ax = _mm256_andnot_ps(sign, xv[i]);
      const __m256 more = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);  // the first of equal maxima stays
      amax = _mm256_blendv_ps(amax, ax, more);
      mx = _mm256_blendv_ps(mx, xv[i], more);
    }
    // Lanes below GROUP_MAX_EPS return before the search: their results are set at the end.
    const __m256 tiny = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
    __m256i Lv[16];
    __m256 sumlx = zero, suml2 = zero;
    {
      const __m256 iscale = _mm256_div_ps(_mm256_set1_ps(-32.f), mx);
      for (int i = 0; i < 16; ++i) {
        Lv[i] = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest_int(_mm256_mul_ps(iscale, xv[i]))));
        const __m256 lf = _mm256_cvtepi32_ps(Lv[i]);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w[i], xv[i]), lf));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w[i], lf), lf));
      }
    }
    __m256 scale = _mm256_and_ps(_mm256_div_ps(sumlx, suml2), _mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ));
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int is = -9; is <= 9; ++is) {
      if (is == 0) continue;
      const __m256 iscale = _mm256_div_ps(_mm256_set1_ps(-(32.f + 0.1f * static_cast<float>(is))), mx);
      __m256i La[16];
      __m256 tlx = zero, tl2 = zero;
      for (int i = 0; i < 16; ++i) {
        La[i] = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest_int(_mm256_mul_ps(iscale, xv[i]))));
        const __m256 lf = _mm256_cvtepi32_ps(La[i]);
        tlx = _mm256_add_ps(tlx, _mm256_mul_ps(_mm256_mul_ps(w[i], xv[i]), lf));
        tl2 = _mm256_add_ps(tl2, _mm256_mul_ps(_mm256_mul_ps(w[i], lf), lf));
      }
      const __m256 better = _mm256_and_ps(_mm256_cmp_ps(tl2, zero, _CMP_GT_OQ),
                                          _mm256_cmp_ps(_mm256_mul_ps(tlx, tlx), _mm256_mul_ps(best, tl2), _CMP_GT_OQ));
      if (_mm256_movemask_ps(better) == 0) continue;
      const __m256i take = _mm256_castps_si256(better);
      for (int i = 0; i < 16; ++i) Lv[i] = _mm256_blendv_epi8(Lv[i], La[i], take);
      const __m256 s = _mm256_div_ps(tlx, tl2);
      scale = _mm256_blendv_ps(scale, s, better);
      best = _mm256_blendv_ps(best, _mm256_mul_ps(s, tlx), better);
    }
    _mm256_storeu_ps(scales + 8 * g, _mm256_blendv_ps(scale, zero, tiny));
    const __m256i keep = _mm256_castps_si256(_mm256_xor_ps(tiny, _mm256_castsi256_ps(_mm256_set1_epi32(-1))));
    alignas(32) int32_t q[16][8];
    for (int i = 0; i < 16; ++i)
      _mm256_store_si256(reinterpret_cast<__m256i*>(q[i]), _mm256_and_si256(_mm256_add_epi32(Lv[i], _mm256_set1_epi32(32)), keep));
    for (int j = 0; j < 8; ++j)
      for (int i = 0; i < 16; ++i) L[128 * g + 16 * j + i] = static_cast<int8_t>(q[i][j]);
  }
}

bool have_avx2() {
  // AVX2 implies F16C on every x86 CPU, and clang 14 (the sanitizer build's) rejects "f16c" here (as ops/cast.cpp).
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}

}  // namespace

const GgmlTypeInfo& ggml_type_info(GgmlType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i;
  throw std::logic_error("ggml_type_info: unknown type");
}

std::span<const GgmlTypeInfo> all_ggml_types() { return kTypes; }

std::optional<uint64_t> ggml_nbytes(GgmlType t, uint64_t row, uint64_t rows) {
  const GgmlTypeInfo& i = ggml_type_info(t);
  if (row % i.block) return std::nullopt;
  const unsigned __int128 n = static_cast<unsigned __int128>(row / i.block) * i.block_bytes * rows;
  if (n > UINT64_MAX) return std::nullopt;
  return static_cast<uint64_t>(n);
}

void encode_row(GgmlType t, const float* x, uint8_t* out, uint64_t n) {
  if (t == GgmlType::Q8_0 && have_avx2()) {
    if (n % 32) throw std::logic_error("encode_row: row is not a whole number of blocks");
    return q8_0_avx2(x, out, n / 32);
  }
  static const KQuantSearch k_avx2{scale_min_avx2, scale_avx2};
  if ((t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K) && have_avx2())
    return encode_k_quants(t, x, out, n, k_avx2);
  encode_row_reference(t, x, out, n);
}

}  // namespace ckpt::ops
