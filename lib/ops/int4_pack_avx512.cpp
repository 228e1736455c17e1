// AVX-512 forms of the INT4 layout transforms (lib/ops/int4_quant.h, marlin_layout.cpp): the
// 32-bit transpose between K-packed words and GPTQ's qweight in 16 x 16 tiles, and the move
// between GPTQ's K-packed and AWQ's N-packed words. The latter works on 8 words of consecutive
// columns 8m..8m+7 of one GPTQ row (lane m, 16 lanes): an 8 x 16 dword transpose gathers them
// into 8 vectors, an 8 x 8 nibble transpose in three swap rounds (16-, 8-, 4-bit) turns "column
// 8m + i, nibble c = K-row 8j + c" into "K-row 8j + c, nibble i = column 8m + order[i]", and the
// 8 vectors are stored as 16 consecutive AWQ words of 8 K-rows. The transpose is its own
// inverse, so AWQ -> GPTQ runs the same steps backwards. K-packed words go to AWQ directly
// (words_to_awq_avx512: nibble transposes of 8 rows, then dword transposes across 16 groups of 8
// rows). The `stream` forms write whole output lines with non-temporal stores (the CPU engine's
// GPTQ/AWQ strips, ops::int4_quantize_qweight). Tested bit for bit against the scalar loops
// (tests/unit/test_int4_quant.cpp, test_marlin_layout.cpp).
#if defined(__x86_64__)
#if !defined(__clang__)  // clang has no such warning group and would warn about the pragma
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "ops/int4_pack_detail.h"

#define CKPT_TARGET_PACK_AVX512 __attribute__((target("avx512f")))

namespace ckpt::ops::detail {
namespace {

// r[0..15] (16 dwords each) transposed in place. Always inlined: called, it passed its 16
// registers through memory (a tenth of the AWQ pack's time in `ckpt quantize`, perf).
CKPT_TARGET_PACK_AVX512 __attribute__((always_inline)) inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Now r[4q + s] holds, in 128-bit lane L, rows 4L'..: element (row 4q + x, col 4L + s') layout;
  // finish with two rounds of 128-bit lane shuffles.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xDD);
  }
}

// The 8 x 8 nibble transpose of a[0..7] (row i = a[i], column c = nibble c), lane by lane.
CKPT_TARGET_PACK_AVX512 __attribute__((always_inline)) inline void nibble_transpose8(__m512i a[8]) {
  auto swap = [](__m512i& x, __m512i& y, int shift, int mask) CKPT_TARGET_PACK_AVX512 {
    // t = ((x >> shift) ^ y) & mask; x ^= t << shift; y ^= t
    const __m512i t = _mm512_ternarylogic_epi32(_mm512_srli_epi32(x, shift), y, _mm512_set1_epi32(mask), 0x28);
    x = _mm512_xor_si512(x, _mm512_slli_epi32(t, shift));
    y = _mm512_xor_si512(y, t);
  };
  for (int i = 0; i < 4; ++i) swap(a[i], a[i + 4], 16, 0x0000FFFF);
  for (int i : {0, 1, 4, 5}) swap(a[i], a[i + 2], 8, 0x00FF00FF);
  for (int i : {0, 2, 4, 6}) swap(a[i], a[i + 1], 4, 0x0F0F0F0F);
}

// The first min(n, 16) lanes of a 16-lane mask (an edge tile's rows or columns).
inline __mmask16 first_lanes(uint64_t n) { return static_cast<__mmask16>((1u << std::min<uint64_t>(n, 16)) - 1); }

// 16 words at p: a non-temporal store where asked and p is a whole line, a plain one otherwise.
CKPT_TARGET_PACK_AVX512 __attribute__((always_inline)) inline void store16(uint32_t* p, __m512i v, bool stream) {
  if (stream && (reinterpret_cast<uintptr_t>(p) & 63) == 0) _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
  else _mm512_storeu_si512(p, v);
}

}  // namespace

CKPT_TARGET_PACK_AVX512 void transpose32_avx512(const uint32_t* in, uint64_t is, uint64_t rows, uint64_t cols,
                                                uint32_t* out, uint64_t os, bool stream) {
  // out[c * os + r] = in[r * is + c] in 16 x 16 tiles; the edge tiles masked (a chunk of a qweight
  // whose rows are not a multiple of 16 words, N = 5632 say, went through the scalar loop).
  for (uint64_t r0 = 0; r0 < rows; r0 += 16) {
    const uint64_t nr = std::min<uint64_t>(16, rows - r0);
    const __mmask16 rm = first_lanes(nr);
    for (uint64_t c0 = 0; c0 < cols; c0 += 16) {
      const uint64_t nc = std::min<uint64_t>(16, cols - c0);
      const __mmask16 cm = first_lanes(nc);
      __m512i v[16];
      for (uint64_t i = 0; i < 16; ++i)
        v[i] = i < nr ? _mm512_maskz_loadu_epi32(cm, in + (r0 + i) * is + c0) : _mm512_setzero_si512();
      transpose16(v);
      for (uint64_t i = 0; i < nc; ++i) {
        if (nr == 16) store16(out + (c0 + i) * os + r0, v[i], stream);
        else _mm512_mask_storeu_epi32(out + (c0 + i) * os + r0, rm, v[i]);
      }
    }
  }
}

namespace {

// Moving the 128 words of columns c0..c0+127 of one GPTQ row between "L[t] lane l = column
// 16t + l" (8 plain loads) and "a[i] lane m = column 8m + i" in three rounds of vpermt2d; the
// index vectors are found by following each column's word through the rounds.
struct Regroup {
  __m512i fwd[3][8], bwd[3][8];  // per round, per output register
  int bsrc[3][8][2];             // backward: the two registers each output is rebuilt from
};

// idx such that want[l] = (l-th element of permutex2var(x, idx, y)).
CKPT_TARGET_PACK_AVX512 __m512i find_index(const int* x, const int* y, const int* want) {
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 16; ++l)
    for (int s = 0; s < 32; ++s)
      if ((s < 16 ? x[s] : y[s - 16]) == want[l]) idx[l] = s;
  return _mm512_load_si512(idx);
}

CKPT_TARGET_PACK_AVX512 Regroup make_regroup() {
  // Contents (column numbers) of the registers before and after each round, forward direction.
  int stage[4][8][16];
  for (int t = 0; t < 8; ++t)
    for (int l = 0; l < 16; ++l) stage[0][t][l] = 16 * t + l;  // L[t]
  for (int u = 0; u < 4; ++u)  // round 1: Q[2u + h] lane 4 ii + mm = column 8 (4u + mm) + 4h + ii
    for (int h = 0; h < 2; ++h)
      for (int ii = 0; ii < 4; ++ii)
        for (int mm = 0; mm < 4; ++mm) stage[1][2 * u + h][4 * ii + mm] = 8 * (4 * u + mm) + 4 * h + ii;
  for (int h = 0; h < 2; ++h)  // round 2: from Q[2u + h] (u = 2v, 2v + 1): lane 8 (ii % 2) + 4 (u % 2) + mm
    for (int v = 0; v < 2; ++v)
      for (int half = 0; half < 2; ++half)
        for (int jj = 0; jj < 2; ++jj)
          for (int uu = 0; uu < 2; ++uu)
            for (int mm = 0; mm < 4; ++mm) {
              const int ii = 2 * half + jj, u = 2 * v + uu;
              stage[2][4 * h + 2 * v + half][8 * jj + 4 * uu + mm] = 8 * (4 * u + mm) + 4 * h + ii;
            }
  for (int i = 0; i < 8; ++i)  // round 3: a[i] lane m = column 8m + i
    for (int m = 0; m < 16; ++m) stage[3][i][m] = 8 * m + i;
  // Which two registers feed each output register, per round.
  static constexpr int kSrc[3][8][2] = {
      {{0, 1}, {0, 1}, {2, 3}, {2, 3}, {4, 5}, {4, 5}, {6, 7}, {6, 7}},
      {{0, 2}, {0, 2}, {4, 6}, {4, 6}, {1, 3}, {1, 3}, {5, 7}, {5, 7}},
      {{0, 2}, {0, 2}, {1, 3}, {1, 3}, {4, 6}, {4, 6}, {5, 7}, {5, 7}},
  };
  Regroup g;
  for (int r = 0; r < 3; ++r)
    for (int o = 0; o < 8; ++o)
      g.fwd[r][o] = find_index(stage[r][kSrc[r][o][0]], stage[r][kSrc[r][o][1]], stage[r + 1][o]);
  // Backward: the same rounds reversed; each input register of a round is rebuilt from the two
  // outputs it fed.
  for (int r = 0; r < 3; ++r)
    for (int o = 0; o < 8; ++o) {
      int a = -1, b = -1;
      for (int q = 0; q < 8; ++q)
        if (kSrc[r][q][0] == o || kSrc[r][q][1] == o) (a < 0 ? a : b) = q;
      g.bwd[r][o] = find_index(stage[r + 1][a], stage[r + 1][b], stage[r][o]);
      g.bsrc[r][o][0] = a;
      g.bsrc[r][o][1] = b;
    }
  return g;
}

// The output registers of round r that each input register o feeds (for the backward rounds).
CKPT_TARGET_PACK_AVX512 void round_fwd(const Regroup& g, int r, const __m512i in[8], __m512i out[8]) {
  static constexpr int kSrc[3][8][2] = {
      {{0, 1}, {0, 1}, {2, 3}, {2, 3}, {4, 5}, {4, 5}, {6, 7}, {6, 7}},
      {{0, 2}, {0, 2}, {4, 6}, {4, 6}, {1, 3}, {1, 3}, {5, 7}, {5, 7}},
      {{0, 2}, {0, 2}, {1, 3}, {1, 3}, {4, 6}, {4, 6}, {5, 7}, {5, 7}},
  };
  for (int o = 0; o < 8; ++o) out[o] = _mm512_permutex2var_epi32(in[kSrc[r][o][0]], g.fwd[r][o], in[kSrc[r][o][1]]);
}

// The sources come from the table: searching them here, per call, cost more than the shuffles
// (a fifth of `ckpt marlin` from AWQ).
CKPT_TARGET_PACK_AVX512 void round_bwd(const Regroup& g, int r, const __m512i in[8], __m512i out[8]) {
  for (int o = 0; o < 8; ++o) out[o] = _mm512_permutex2var_epi32(in[g.bsrc[r][o][0]], g.bwd[r][o], in[g.bsrc[r][o][1]]);
}

}  // namespace

CKPT_TARGET_PACK_AVX512 void gptq_to_awq_avx512(const uint32_t* g, uint64_t gs, uint64_t nrows, uint64_t n,
                                                uint32_t* awq, uint64_t as) {
  // GPTQ rows [0, nrows) of columns [0, n) (n % 8 == 0) -> AWQ rows [0, 8 nrows), words [0, n/8).
  const uint64_t m128 = n / 128 * 128;
  static const Regroup rg = make_regroup();
  for (uint64_t j = 0; j < nrows; ++j)
    for (uint64_t c0 = 0; c0 < m128; c0 += 128) {
      __m512i x[8], y[8];
      for (int t = 0; t < 8; ++t) x[t] = _mm512_loadu_si512(g + j * gs + c0 + 16 * t);
      round_fwd(rg, 0, x, y);
      round_fwd(rg, 1, y, x);
      round_fwd(rg, 2, x, y);  // y[i] lane m = column 8m + i
      __m512i a[8];
      for (int i = 0; i < 8; ++i) a[i] = y[kAwqOrder[i]];  // AWQ nibble i = column 8m + order[i]
      nibble_transpose8(a);
      for (int c = 0; c < 8; ++c) _mm512_storeu_si512(awq + (8 * j + c) * as + c0 / 8, a[c]);
    }
  gptq_to_awq_scalar(g + m128, gs, nrows, n - m128, awq + m128 / 8, as);
}

CKPT_TARGET_PACK_AVX512 void awq_to_gptq_avx512(const uint32_t* awq, uint64_t as, uint64_t nrows, uint64_t n,
                                                uint32_t* g, uint64_t gs) {
  const uint64_t m128 = n / 128 * 128;
  static const Regroup rg = make_regroup();
  for (uint64_t j = 0; j < nrows; ++j)
    for (uint64_t c0 = 0; c0 < m128; c0 += 128) {
      __m512i a[8], x[8], y[8];
      for (int c = 0; c < 8; ++c) a[c] = _mm512_loadu_si512(awq + (8 * j + c) * as + c0 / 8);
      nibble_transpose8(a);
      for (int i = 0; i < 8; ++i) y[kAwqOrder[i]] = a[i];
      round_bwd(rg, 2, y, x);
      round_bwd(rg, 1, x, y);
      round_bwd(rg, 0, y, x);
      for (int t = 0; t < 8; ++t) _mm512_storeu_si512(g + j * gs + c0 + 16 * t, x[t]);
    }
  awq_to_gptq_scalar(awq + m128 / 8, as, nrows, n - m128, g + m128, gs);
}

CKPT_TARGET_PACK_AVX512 void words_to_awq_avx512(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t ncols,
                                                 uint32_t* out, uint64_t os, bool stream) {
  // Tiles of up to 16 groups of 8 rows (m) x 16 words (j, lane l): the 8 rows of group m, read in
  // AWQ's order, are nibble-transposed (a[c] lane l = the AWQ word of row k = 8 (j0 + l) + c and
  // group m) into buf[c][m]; then each buf[c] is dword-transposed (v[l] lane m), and v[l] is the
  // run of 16 words of output row 8 (j0 + l) + c from group m0, stored at once. Partial tiles
  // (fewer groups, fewer words) run masked. Groups outer: each input row is read in order.
  const uint64_t groups = rows / 8, nwords = (ncols + 7) / 8;
  alignas(64) uint32_t buf[8][16][16];
  for (uint64_t m0 = 0; m0 < groups; m0 += 16) {
    const uint64_t nm = std::min<uint64_t>(16, groups - m0);
    const __mmask16 mm = first_lanes(nm);
    for (uint64_t j0 = 0; j0 < nwords; j0 += 16) {
      const uint64_t nj = std::min<uint64_t>(16, nwords - j0);
      const __mmask16 jm = first_lanes(nj);
      for (uint64_t m = 0; m < nm; ++m) {
        __m512i a[8];
        for (int i = 0; i < 8; ++i)
          a[i] = _mm512_maskz_loadu_epi32(jm, words + (8 * (m0 + m) + static_cast<uint64_t>(kAwqOrder[i])) * ws + j0);
        nibble_transpose8(a);
        for (int c = 0; c < 8; ++c) _mm512_store_si512(buf[c][m], a[c]);
      }
      const uint64_t kend = std::min<uint64_t>(ncols, 8 * (j0 + nj));  // output rows of this tile: [8 j0, kend)
      for (uint64_t c = 0; c < 8; ++c) {
        __m512i v[16];
        for (uint64_t m = 0; m < 16; ++m) v[m] = m < nm ? _mm512_load_si512(buf[c][m]) : _mm512_setzero_si512();
        transpose16(v);
        for (uint64_t l = 0; l < nj; ++l) {
          const uint64_t k = 8 * (j0 + l) + c;
          if (k >= kend) break;
          if (nm == 16) store16(out + k * os + m0, v[l], stream);
          else _mm512_mask_storeu_epi32(out + k * os + m0, mm, v[l]);
        }
      }
    }
  }
}

void stream_fence() { _mm_sfence(); }

bool pack_avx512_on_this_cpu() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

}  // namespace ckpt::ops::detail

#else

#include "ops/int4_pack_detail.h"

namespace ckpt::ops::detail {
bool pack_avx512_on_this_cpu() { return false; }
void stream_fence() {}
void transpose32_avx512(const uint32_t* in, uint64_t is, uint64_t rows, uint64_t cols, uint32_t* out, uint64_t os,
                        bool) {
  transpose32_scalar(in, is, rows, cols, out, os);
}
void gptq_to_awq_avx512(const uint32_t* g, uint64_t gs, uint64_t nrows, uint64_t n, uint32_t* awq, uint64_t as) {
  gptq_to_awq_scalar(g, gs, nrows, n, awq, as);
}
void awq_to_gptq_avx512(const uint32_t* awq, uint64_t as, uint64_t nrows, uint64_t n, uint32_t* g, uint64_t gs) {
  awq_to_gptq_scalar(awq, as, nrows, n, g, gs);
}
void words_to_awq_avx512(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t ncols, uint32_t* out, uint64_t os,
                         bool) {
  words_to_awq_scalar(words, ws, rows, ncols, out, os);
}
}  // namespace ckpt::ops::detail

#endif
