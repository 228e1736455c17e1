#include "ops/ggml_blocks.h"

#include <immintrin.h>

#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>

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
  encode_row_reference(t, x, out, n);
}

}  // namespace ckpt::ops
