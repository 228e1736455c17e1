// The AVX-512 Marlin repack of GPTQ-layout rows, one 16 x 64 tile (two rows of 64 words in, 128
// words out) at a time, in four steps per warp w (output words 4 th + w) and quarter jq of
// th / 4 (j = 4 jq + t, t = 0..3):
//   1. one vpermt2b gathers, for each output word (j, b = th % 4), the bytes b of its four source
//      words [A0, A1, B0, B1] = (row 0 | row 1) x (column 16 w + j | + 8) into one dword x;
//   2. two shifts and two bit selects put lo(x0) | lo(x1) << 4 into byte 0 and lo(x2) | lo(x3)
//      << 4 into byte 2 (and the high nibbles likewise), a vpermt2b packs them into the word;
//   3. a 4 x 4 transpose of 128-bit lanes across the four warps and one vpermd per output vector
//      put word (th, w) at 4 th + w.
// The inverse (marlin_unpack) runs the steps backwards, below. compressed-tensors sources feed
// the same steps from gathers of their columns (marlin_repack_ct_rows_avx512), and AWQ sources
// take their own kernel (an 8 x 8 nibble transpose per tile, make_awq_tables), instead of a pass
// through GPTQ layout. All are tested against the nibble-at-a-time closed form bit for bit
// (tests/unit/test_marlin_layout.cpp).
#if defined(__x86_64__)
#if !defined(__clang__)  // clang has no such warning group and would warn about the pragma
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "ops/int4_quant.h"
#include "ops/marlin_layout_detail.h"

#define CKPT_TARGET_MARLIN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

namespace ckpt::ops::detail {
namespace {

struct Tables {
  __m512i gather[2];     // step 1, per jq: GPTQ rows (row 0, row 1 of 16 columns)
  __m512i gather_ct[2];  // the same bytes from compressed-tensors (qwords of columns 0..7, 8..15)
  __m512i pick;       // step 2
  __m512i order;      // step 3
};

CKPT_TARGET_MARLIN_AVX512 Tables make_tables() {
  alignas(64) uint8_t g[2][64], gc[2][64], pick[64];
  alignas(64) uint32_t order[16];
  for (int jq = 0; jq < 2; ++jq)
    for (int t = 0; t < 4; ++t)
      for (int b = 0; b < 4; ++b) {
        const int j = 4 * jq + t, d = 4 * t + b;
        g[jq][4 * d + 0] = static_cast<uint8_t>(4 * j + b);            // A0: row 0, column j
        g[jq][4 * d + 1] = static_cast<uint8_t>(64 + 4 * j + b);       // A1: row 1, column j
        g[jq][4 * d + 2] = static_cast<uint8_t>(32 + 4 * j + b);       // B0: row 0, column j + 8
        g[jq][4 * d + 3] = static_cast<uint8_t>(64 + 32 + 4 * j + b);  // B1: row 1, column j + 8
        // compressed-tensors: qword j of the first vector holds (row 0, row 1) of column j, of
        // the second those of column j + 8.
        gc[jq][4 * d + 0] = static_cast<uint8_t>(8 * j + b);
        gc[jq][4 * d + 1] = static_cast<uint8_t>(8 * j + 4 + b);
        gc[jq][4 * d + 2] = static_cast<uint8_t>(64 + 8 * j + b);
        gc[jq][4 * d + 3] = static_cast<uint8_t>(64 + 8 * j + 4 + b);
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
  tb.gather_ct[0] = _mm512_load_si512(gc[0]);
  tb.gather_ct[1] = _mm512_load_si512(gc[1]);
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

// AWQ <-> Marlin as an 8 x 8 nibble transpose (marlin_repack_awq_rows_avx512). Marlin word
// (th = 4 col + b, warp w) of a tile holds the codes of K-rows 2b + lo + 8 hi (lo, hi in {0, 1}) and
// columns 16 w + col + 8 blk; in AWQ these are nibble kAwqNibble[col] of words 2w + blk of those
// K-rows: eight words, one nibble position. Lane 4b + w of vector s = 4 lo + 2 blk + hi (the
// nibble Marlin gives that code: kMarlinNibble[4 blk + lo + 2 hi]) takes the AWQ word of member
// (lo, blk, hi); after the lane-wise transpose (vector q nibble s = vector s nibble q before),
// vector q lane 4b + w is Marlin word (4 kAwqOrder[q] + b, w), so vector q is words
// 16 kAwqOrder[q] .. + 15 of the tile: one store. The transpose runs in three rounds, each
// swapping one bit of the vector index s with the same bit of the nibble index: bit 1 (bytes),
// folded into the gather of the AWQ words (both members blk = 0, 1 come from the same two loaded
// vectors), then bit 2 (16-bit halves) and bit 0 (nibbles). Each round is its own inverse, so
// Marlin -> AWQ runs them backwards.
struct AwqTables {
  __m512i gather[2];  // per blk: the bit-1 round's vector s from the two loads of its (lo, hi)
  __m512i halves[2];  // per lo: the bit-2 round (16-bit halves of vectors lo = 0 and 1)
  __m512i scatter[2];  // per load i: the inverse of `gather`, from the vectors blk = 0 and 1
};

// Loads of (lo, hi): load i holds K-rows lo + 8 hi + 4i (lanes 0..7) and that + 2 (lanes 8..15),
// words 8 nt .. 8 nt + 7, so lane 8 b' + word of load i is K-row 2 (2i + b') + lo + 8 hi.
CKPT_TARGET_MARLIN_AVX512 AwqTables make_awq_tables() {
  alignas(64) uint8_t g[2][64], h[2][64], sc[2][64];
  for (int blk = 0; blk < 2; ++blk)
    for (int lane = 0; lane < 16; ++lane)
      for (int byte = 0; byte < 4; ++byte) {
        // Vector (blk' = byte % 2) lane 4b + w is dword 8b + 2w + blk' of the two loads; its byte
        // (byte & 2) | blk lands in byte `byte` of vector blk (the bit-1 round).
        const int b = lane / 4, w = lane % 4, from_blk = byte % 2;
        const int src = 4 * (8 * b + 2 * w + from_blk) + ((byte & 2) | blk);
        g[blk][4 * lane + byte] = static_cast<uint8_t>(src);
        sc[src / 64][src % 64] = static_cast<uint8_t>(64 * blk + 4 * lane + byte);
      }
  for (int lo = 0; lo < 2; ++lo)
    for (int lane = 0; lane < 16; ++lane)
      for (int byte = 0; byte < 4; ++byte)  // half byte / 2 of vector lo' = byte / 2, half lo of the byte
        h[lo][4 * lane + byte] = static_cast<uint8_t>(64 * (byte / 2) + 4 * lane + 2 * lo + byte % 2);
  AwqTables t;
  for (int i = 0; i < 2; ++i) {
    t.gather[i] = _mm512_load_si512(g[i]);
    t.halves[i] = _mm512_load_si512(h[i]);
    t.scatter[i] = _mm512_load_si512(sc[i]);
  }
  return t;
}

// The bit-2 and bit-0 rounds of the transpose on v[0..7] (vector s = 4 lo + 2 blk + hi), in place.
CKPT_TARGET_MARLIN_AVX512 inline void awq_rounds_2_0(const AwqTables& tb, __m512i v[8]) {
  for (int s : {0, 1, 2, 3}) {  // bit 2: vectors s and s + 4
    const __m512i x = v[s], y = v[s + 4];
    v[s] = _mm512_permutex2var_epi8(x, tb.halves[0], y);
    v[s + 4] = _mm512_permutex2var_epi8(x, tb.halves[1], y);
  }
  const __m512i m = _mm512_set1_epi8(0x0F);
  for (int s : {0, 2, 4, 6}) {  // bit 0: nibbles of vectors s and s + 1
    const __m512i x = v[s], y = v[s + 1];
    v[s] = _mm512_ternarylogic_epi32(m, x, _mm512_slli_epi32(y, 4), 0xCA);      // m ? x : y << 4
    v[s + 1] = _mm512_ternarylogic_epi32(m, _mm512_srli_epi32(x, 4), y, 0xCA);  // m ? x >> 4 : y
  }
}

}  // namespace

bool marlin_avx512_on_this_cpu() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vbmi");
}

// Steps 1-3 for one tile: warp w's source bytes are a[w] and b[w], picked by `gather` (GPTQ rows
// or compressed-tensors columns); its 128 words stored at `o`.
CKPT_TARGET_MARLIN_AVX512 inline void repack_tile(const Tables& tb, const __m512i gather[2], const __m512i a[4],
                                                  const __m512i b[4], uint32_t* o) {
  const __m512i lo_mask = _mm512_set1_epi32(0x000F000F);
  __m512i y[2][4];
  for (int w = 0; w < 4; ++w)
    for (int jq = 0; jq < 2; ++jq) {
      const __m512i x = _mm512_permutex2var_epi8(a[w], gather[jq], b[w]);
      const __m512i s4 = _mm512_srli_epi32(x, 4), s8 = _mm512_srli_epi32(x, 8);
      const __m512i l = _mm512_ternarylogic_epi32(lo_mask, x, s4, 0xCA);  // mask ? x : s4
      const __m512i h = _mm512_ternarylogic_epi32(lo_mask, s4, s8, 0xCA);
      y[jq][w] = _mm512_permutex2var_epi8(l, tb.pick, h);
    }
  for (int jq = 0; jq < 2; ++jq) {
    const __m512i t0 = _mm512_shuffle_i32x4(y[jq][0], y[jq][1], 0x44), t1 = _mm512_shuffle_i32x4(y[jq][0], y[jq][1], 0xEE);
    const __m512i t2 = _mm512_shuffle_i32x4(y[jq][2], y[jq][3], 0x44), t3 = _mm512_shuffle_i32x4(y[jq][2], y[jq][3], 0xEE);
    const __m512i z[4] = {_mm512_shuffle_i32x4(t0, t2, 0x88), _mm512_shuffle_i32x4(t0, t2, 0xDD),
                          _mm512_shuffle_i32x4(t1, t3, 0x88), _mm512_shuffle_i32x4(t1, t3, 0xDD)};
    for (int t = 0; t < 4; ++t) _mm512_storeu_si512(o + 16 * (4 * jq + t), _mm512_permutexvar_epi32(tb.order, z[t]));
  }
}

CKPT_TARGET_MARLIN_AVX512 void marlin_repack_gptq_rows_avx512(const uint32_t* q, uint64_t stride, uint64_t n,
                                                              uint64_t kts, uint32_t* out) {
  static const Tables tb = make_tables();
  for (uint64_t kt = 0; kt < kts; ++kt) {
    const uint32_t* r0 = q + 2 * kt * stride;
    const uint32_t* r1 = r0 + stride;
    for (uint64_t nt = 0; nt < n / 64; ++nt) {
      __m512i a[4], b[4];
      for (int w = 0; w < 4; ++w) {
        a[w] = _mm512_loadu_si512(r0 + 64 * nt + 16 * w);
        b[w] = _mm512_loadu_si512(r1 + 64 * nt + 16 * w);
      }
      repack_tile(tb, tb.gather, a, b, out + kt * 2 * n + 128 * nt);
    }
  }
}

// compressed-tensors: column c's two words of K-tile kt (rows 2 kt, 2 kt + 1 of GPTQ's qweight) are
// one qword of its row of weight_packed, so a warp's 16 columns are two 8-qword gathers. Tiles
// go K-fastest within a column tile: the 64 rows' cache lines serve 8 K-tiles from L1.
CKPT_TARGET_MARLIN_AVX512 void marlin_repack_ct_rows_avx512(const uint32_t* wp, uint64_t stride, uint64_t n,
                                                            uint64_t kts, uint32_t* out) {
  static const Tables tb = make_tables();
  const long long st = static_cast<long long>(stride);
  const __m512i rows = _mm512_setr_epi64(0, st, 2 * st, 3 * st, 4 * st, 5 * st, 6 * st, 7 * st);
  const __m512i eight = _mm512_set1_epi64(static_cast<long long>(8 * stride));
  for (uint64_t nt = 0; nt < n / 64; ++nt)
    for (uint64_t kt = 0; kt < kts; ++kt) {
      const uint32_t* base = wp + 64 * nt * stride + 2 * kt;
      __m512i a[4], b[4];
      for (int w = 0; w < 4; ++w) {
        const uint32_t* c = base + 16 * w * stride;
        a[w] = _mm512_i64gather_epi64(rows, c, 4);
        b[w] = _mm512_i64gather_epi64(_mm512_add_epi64(rows, eight), c, 4);
      }
      repack_tile(tb, tb.gather_ct, a, b, out + kt * 2 * n + 128 * nt);
    }
}

// The inverse, one tile at a time: (1) each Marlin word's nibbles unzipped back into bytes
// [A0, A1, B0, B1] (lo(x0) | hi(x0) << 4, ...: two swap steps, bytes 1 <-> 2 then nibbles 1 <-> 2
// of each half); (2) for warp w, its 32 words th = 0..31 (word 4 th + w) gathered in th order
// into two vectors (vpermt2d of pairs of input vectors and a blend); (3) one vpermt2b per GPTQ
// row: byte b of column 8 blk + col comes from word th = 4 col + b, byte 2 blk + row.
CKPT_TARGET_MARLIN_AVX512 void marlin_unpack_gptq_rows_avx512(const uint32_t* b, uint64_t bs, uint64_t n, uint64_t kts,
                                                              uint32_t* q, uint64_t stride) {
  static const UnpackTables tb = make_unpack_tables();
  const __m512i m8 = _mm512_set1_epi32(0x0000FF00), m4 = _mm512_set1_epi32(0x00F000F0);
  for (uint64_t kt = 0; kt < kts; ++kt) {
    const uint32_t* row = b + kt * bs;
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

CKPT_TARGET_MARLIN_AVX512 void marlin_repack_awq_rows_avx512(const uint32_t* q, uint64_t stride, uint64_t n,
                                                             uint64_t kts, uint32_t* out) {
  static const AwqTables tb = make_awq_tables();
  for (uint64_t kt = 0; kt < kts; ++kt) {
    const uint32_t* rows = q + 16 * kt * stride;
    uint32_t* o = out + kt * 2 * n;
    for (uint64_t nt = 0; nt < n / 64; ++nt) {
      const uint32_t* r = rows + 8 * nt;
      __m512i v[8];
      for (int lo = 0; lo < 2; ++lo)
        for (int hi = 0; hi < 2; ++hi) {
          __m512i ld[2];
          for (int i = 0; i < 2; ++i) {
            const uint32_t* a = r + (lo + 8 * hi + 4 * i) * stride;
            ld[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a))),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2 * stride)), 1);
          }
          for (int blk = 0; blk < 2; ++blk) v[4 * lo + 2 * blk + hi] = _mm512_permutex2var_epi8(ld[0], tb.gather[blk], ld[1]);
        }
      awq_rounds_2_0(tb, v);
      for (int s = 0; s < 8; ++s) _mm512_storeu_si512(o + 128 * nt + 16 * kAwqOrder[s], v[s]);
    }
  }
}

CKPT_TARGET_MARLIN_AVX512 void marlin_unpack_awq_rows_avx512(const uint32_t* b, uint64_t bs, uint64_t n, uint64_t kts,
                                                             uint32_t* q, uint64_t stride) {
  static const AwqTables tb = make_awq_tables();
  for (uint64_t kt = 0; kt < kts; ++kt) {
    const uint32_t* row = b + kt * bs;
    uint32_t* rows = q + 16 * kt * stride;
    for (uint64_t nt = 0; nt < n / 64; ++nt) {
      __m512i v[8];
      for (int s = 0; s < 8; ++s) v[s] = _mm512_loadu_si512(row + 128 * nt + 16 * kAwqOrder[s]);
      awq_rounds_2_0(tb, v);
      uint32_t* r = rows + 8 * nt;
      for (int lo = 0; lo < 2; ++lo)
        for (int hi = 0; hi < 2; ++hi)
          for (int i = 0; i < 2; ++i) {
            const __m512i x = _mm512_permutex2var_epi8(v[4 * lo + hi], tb.scatter[i], v[4 * lo + 2 + hi]);
            uint32_t* a = r + (lo + 8 * hi + 4 * i) * stride;
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(a), _mm512_castsi512_si256(x));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + 2 * stride), _mm512_extracti64x4_epi64(x, 1));
          }
    }
  }
}

}  // namespace ckpt::ops::detail

#else

#include <stdexcept>

#include "ops/marlin_layout_detail.h"

namespace ckpt::ops::detail {
bool marlin_avx512_on_this_cpu() { return false; }
void marlin_repack_gptq_rows_avx512(const uint32_t* q, uint64_t stride, uint64_t n, uint64_t kts, uint32_t* out) {
  marlin_repack_gptq_rows_scalar(q, stride, n, kts, out);
}
void marlin_unpack_gptq_rows_avx512(const uint32_t* b, uint64_t bs, uint64_t n, uint64_t kts, uint32_t* q,
                                    uint64_t stride) {
  marlin_unpack_gptq_rows_scalar(b, bs, n, kts, q, stride);
}
void marlin_repack_awq_rows_avx512(const uint32_t*, uint64_t, uint64_t, uint64_t, uint32_t*) {
  throw std::logic_error("marlin: no AVX-512 in this build");
}
void marlin_repack_ct_rows_avx512(const uint32_t*, uint64_t, uint64_t, uint64_t, uint32_t*) {
  throw std::logic_error("marlin: no AVX-512 in this build");
}
void marlin_unpack_awq_rows_avx512(const uint32_t*, uint64_t, uint64_t, uint64_t, uint32_t*, uint64_t) {
  throw std::logic_error("marlin: no AVX-512 in this build");
}
}  // namespace ckpt::ops::detail

#endif
