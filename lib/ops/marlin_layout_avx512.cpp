// The AVX-512 Marlin repack of GPTQ-layout rows, one 16 x 64 tile (two rows of 64 words in, 128
// words out) at a time, in four steps per warp w (output words 4 th + w) and quarter jq of
// th / 4 (j = 4 jq + t, t = 0..3):
//   1. one vpermt2b gathers, for each output word (j, b = th % 4), the bytes b of its four source
//      words [A0, A1, B0, B1] = (row 0 | row 1) x (column 16 w + j | + 8) into one dword x;
//   2. two shifts and two bit selects put lo(x0) | lo(x1) << 4 into byte 0 and lo(x2) | lo(x3)
//      << 4 into byte 2 (and the high nibbles likewise), a vpermt2b packs them into the word;
//   3. a 4 x 4 transpose of 128-bit lanes across the four warps and one vpermd per output vector
//      put word (th, w) at 4 th + w.
// The inverse (marlin_unpack) runs the steps backwards, below. Both are tested against the
// nibble-at-a-time closed form bit for bit (tests/unit/test_marlin_layout.cpp).
#if defined(__x86_64__)
#if !defined(__clang__)  // clang has no such warning group and would warn about the pragma
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "ops/marlin_layout_detail.h"

#define CKPT_TARGET_MARLIN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

namespace ckpt::ops::detail {
namespace {

struct Tables {
  __m512i gather[2];  // step 1, per jq
  __m512i pick;       // step 2
  __m512i order;      // step 3
};

CKPT_TARGET_MARLIN_AVX512 Tables make_tables() {
  alignas(64) uint8_t g[2][64], pick[64];
  alignas(64) uint32_t order[16];
  for (int jq = 0; jq < 2; ++jq)
    for (int t = 0; t < 4; ++t)
      for (int b = 0; b < 4; ++b) {
        const int j = 4 * jq + t, d = 4 * t + b;
        g[jq][4 * d + 0] = static_cast<uint8_t>(4 * j + b);            // A0: row 0, column j
        g[jq][4 * d + 1] = static_cast<uint8_t>(64 + 4 * j + b);       // A1: row 1, column j
        g[jq][4 * d + 2] = static_cast<uint8_t>(32 + 4 * j + b);       // B0: row 0, column j + 8
        g[jq][4 * d + 3] = static_cast<uint8_t>(64 + 32 + 4 * j + b);  // B1: row 1, column j + 8
      }
  for (int d = 0; d < 16; ++d) {
    pick[4 * d + 0] = static_cast<uint8_t>(4 * d);
    pick[4 * d + 1] = static_cast<uint8_t>(4 * d + 2);
    pick[4 * d + 2] = static_cast<uint8_t>(64 + 4 * d);
    pick[4 * d + 3] = static_cast<uint8_t>(64 + 4 * d + 2);
  }
  for (int p = 0; p < 16; ++p) order[p] = static_cast<uint32_t>(4 * (p % 4) + p / 4);
  Tables tb;
  tb.gather[0] = _mm512_load_si512(g[0]);
  tb.gather[1] = _mm512_load_si512(g[1]);
  tb.pick = _mm512_load_si512(pick);
  tb.order = _mm512_load_si512(order);
  return tb;
}

struct UnpackTables {
  __m512i gather[4];  // step 2, per warp: lane m = word th = 16 half + m
  __m512i rows[2];    // step 3, per GPTQ row
};

CKPT_TARGET_MARLIN_AVX512 UnpackTables make_unpack_tables() {
  alignas(64) uint32_t g[4][16];
  alignas(64) uint8_t r[2][64];
  for (int w = 0; w < 4; ++w)
    for (int m = 0; m < 16; ++m) g[w][m] = static_cast<uint32_t>(16 * ((m % 8) / 4) + 4 * (m % 4) + w);
  for (int h = 0; h < 2; ++h)
    for (int c = 0; c < 16; ++c)
      for (int bb = 0; bb < 4; ++bb) r[h][4 * c + bb] = static_cast<uint8_t>(16 * (c % 8) + 4 * bb + 2 * (c / 8) + h);
  UnpackTables t;
  for (int w = 0; w < 4; ++w) t.gather[w] = _mm512_load_si512(g[w]);
  for (int h = 0; h < 2; ++h) t.rows[h] = _mm512_load_si512(r[h]);
  return t;
}

}  // namespace

bool marlin_avx512_on_this_cpu() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vbmi");
}

CKPT_TARGET_MARLIN_AVX512 void marlin_repack_gptq_rows_avx512(const uint32_t* q, uint64_t stride, uint64_t n,
                                                              uint64_t kts, uint32_t* out) {
  static const Tables tb = make_tables();
  const __m512i lo_mask = _mm512_set1_epi32(0x000F000F);
  for (uint64_t kt = 0; kt < kts; ++kt) {
    const uint32_t* r0 = q + 2 * kt * stride;
    const uint32_t* r1 = r0 + stride;
    uint32_t* o = out + kt * 2 * n;
    for (uint64_t nt = 0; nt < n / 64; ++nt) {
      __m512i y[2][4];
      for (int w = 0; w < 4; ++w) {
        const __m512i a = _mm512_loadu_si512(r0 + 64 * nt + 16 * w), b = _mm512_loadu_si512(r1 + 64 * nt + 16 * w);
        for (int jq = 0; jq < 2; ++jq) {
          const __m512i x = _mm512_permutex2var_epi8(a, tb.gather[jq], b);
          const __m512i s4 = _mm512_srli_epi32(x, 4), s8 = _mm512_srli_epi32(x, 8);
          const __m512i l = _mm512_ternarylogic_epi32(lo_mask, x, s4, 0xCA);  // mask ? x : s4
          const __m512i h = _mm512_ternarylogic_epi32(lo_mask, s4, s8, 0xCA);
          y[jq][w] = _mm512_permutex2var_epi8(l, tb.pick, h);
        }
      }
      for (int jq = 0; jq < 2; ++jq) {
        const __m512i t0 = _mm512_shuffle_i32x4(y[jq][0], y[jq][1], 0x44), t1 = _mm512_shuffle_i32x4(y[jq][0], y[jq][1], 0xEE);
        const __m512i t2 = _mm512_shuffle_i32x4(y[jq][2], y[jq][3], 0x44), t3 = _mm512_shuffle_i32x4(y[jq][2], y[jq][3], 0xEE);
        const __m512i z[4] = {_mm512_shuffle_i32x4(t0, t2, 0x88), _mm512_shuffle_i32x4(t0, t2, 0xDD),
                              _mm512_shuffle_i32x4(t1, t3, 0x88), _mm512_shuffle_i32x4(t1, t3, 0xDD)};
        for (int t = 0; t < 4; ++t)
          _mm512_storeu_si512(o + 128 * nt + 16 * (4 * jq + t), _mm512_permutexvar_epi32(tb.order, z[t]));
      }
    }
  }
}

// The inverse, one tile at a time: (1) each Marlin word's nibbles unzipped back into bytes
// [A0, A1, B0, B1] (lo(x0) | hi(x0) << 4, ...: two swap steps, bytes 1 <-> 2 then nibbles 1 <-> 2
// of each half); (2) for warp w, its 32 words th = 0..31 (word 4 th + w) gathered in th order
// into two vectors (vpermt2d of pairs of input vectors and a blend); (3) one vpermt2b per GPTQ
// row: byte b of column 8 blk + col comes from word th = 4 col + b, byte 2 blk + row.
CKPT_TARGET_MARLIN_AVX512 void marlin_unpack_gptq_rows_avx512(const uint32_t* b, uint64_t n, uint64_t kts, uint32_t* q,
                                                              uint64_t stride) {
  static const UnpackTables tb = make_unpack_tables();
  const __m512i m8 = _mm512_set1_epi32(0x0000FF00), m4 = _mm512_set1_epi32(0x00F000F0);
  for (uint64_t kt = 0; kt < kts; ++kt) {
    const uint32_t* row = b + kt * 2 * n;
    uint32_t* r0 = q + 2 * kt * stride;
    uint32_t* r1 = r0 + stride;
    for (uint64_t nt = 0; nt < n / 64; ++nt) {
      __m512i z[8];
      for (int p = 0; p < 8; ++p) {
        __m512i x = _mm512_loadu_si512(row + 128 * nt + 16 * p);
        __m512i t = _mm512_ternarylogic_epi32(x, _mm512_srli_epi32(x, 8), m8, 0x28);  // (x ^ x >> 8) & m8
        x = _mm512_ternarylogic_epi32(x, t, _mm512_slli_epi32(t, 8), 0x96);           // x ^ t ^ t << 8
        t = _mm512_ternarylogic_epi32(x, _mm512_srli_epi32(x, 4), m4, 0x28);
        z[p] = _mm512_ternarylogic_epi32(x, t, _mm512_slli_epi32(t, 4), 0x96);
      }
      for (int w = 0; w < 4; ++w) {
        __m512i v[2];
        for (int h = 0; h < 2; ++h)
          v[h] = _mm512_mask_blend_epi32(static_cast<__mmask16>(0xFF00),
                                         _mm512_permutex2var_epi32(z[4 * h], tb.gather[w], z[4 * h + 1]),
                                         _mm512_permutex2var_epi32(z[4 * h + 2], tb.gather[w], z[4 * h + 3]));
        _mm512_storeu_si512(r0 + 64 * nt + 16 * w, _mm512_permutex2var_epi8(v[0], tb.rows[0], v[1]));
        _mm512_storeu_si512(r1 + 64 * nt + 16 * w, _mm512_permutex2var_epi8(v[0], tb.rows[1], v[1]));
      }
    }
  }
}

}  // namespace ckpt::ops::detail

#else

#include "ops/marlin_layout_detail.h"

namespace ckpt::ops::detail {
bool marlin_avx512_on_this_cpu() { return false; }
void marlin_repack_gptq_rows_avx512(const uint32_t* q, uint64_t stride, uint64_t n, uint64_t kts, uint32_t* out) {
  marlin_repack_gptq_rows_scalar(q, stride, n, kts, out);
}
void marlin_unpack_gptq_rows_avx512(const uint32_t* b, uint64_t n, uint64_t kts, uint32_t* q, uint64_t stride) {
  marlin_unpack_gptq_rows_scalar(b, n, kts, q, stride);
}
}  // namespace ckpt::ops::detail

#endif
