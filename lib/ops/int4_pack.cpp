// The INT4 layout transforms: K-packed words (compressed-tensors' weight_packed) <-> GPTQ's
// qweight (a 32-bit transpose) <-> AWQ's qweight (an 8 x 8 nibble transpose per 8 K-rows and 8
// columns, with AWQ's interleave). Scalar loops, the AVX-512 dispatch, and the public functions
// of lib/ops/int4_quant.h built from them.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "ops/int4_pack_detail.h"

namespace ckpt::ops {

namespace detail {

void transpose32_scalar(const uint32_t* in, uint64_t is, uint64_t rows, uint64_t cols, uint32_t* out, uint64_t os) {
  constexpr uint64_t T = 16;  // tiles, so both sides stay in cache lines
  for (uint64_t r0 = 0; r0 < rows; r0 += T)
    for (uint64_t c0 = 0; c0 < cols; c0 += T)
      for (uint64_t c = c0; c < std::min(cols, c0 + T); ++c)
        for (uint64_t r = r0; r < std::min(rows, r0 + T); ++r) out[c * os + r] = in[r * is + c];
}

void gptq_to_awq_scalar(const uint32_t* g, uint64_t gs, uint64_t nrows, uint64_t n, uint32_t* awq, uint64_t as) {
  for (uint64_t j = 0; j < nrows; ++j)
    for (uint64_t m = 0; m < n / 8; ++m) {
      uint32_t w[8];  // w[i]: the GPTQ word of column 8m + order[i]
      for (int i = 0; i < 8; ++i) w[i] = g[j * gs + 8 * m + static_cast<uint64_t>(kAwqOrder[i])];
      for (int c = 0; c < 8; ++c) {
        uint32_t v = 0;
        for (int i = 0; i < 8; ++i) v |= ((w[i] >> (4 * c)) & 15u) << (4 * i);
        awq[(8 * j + static_cast<uint64_t>(c)) * as + m] = v;
      }
    }
}

void awq_to_gptq_scalar(const uint32_t* awq, uint64_t as, uint64_t nrows, uint64_t n, uint32_t* g, uint64_t gs) {
  for (uint64_t j = 0; j < nrows; ++j)
    for (uint64_t m = 0; m < n / 8; ++m) {
      uint32_t w[8] = {};
      for (int c = 0; c < 8; ++c) {
        const uint32_t v = awq[(8 * j + static_cast<uint64_t>(c)) * as + m];
        for (int i = 0; i < 8; ++i) w[i] |= ((v >> (4 * i)) & 15u) << (4 * c);
      }
      for (int i = 0; i < 8; ++i) g[j * gs + 8 * m + static_cast<uint64_t>(kAwqOrder[i])] = w[i];
    }
}

void words_to_awq_scalar(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t ncols, uint32_t* out,
                         uint64_t os) {
  for (uint64_t m = 0; m < rows / 8; ++m)
    for (uint64_t k = 0; k < ncols; ++k) {
      uint32_t v = 0;
      for (int i = 0; i < 8; ++i)
        v |= ((words[(8 * m + static_cast<uint64_t>(kAwqOrder[i])) * ws + k / 8] >> (4 * (k % 8))) & 15u) << (4 * i);
      out[k * os + m] = v;
    }
}

namespace {
const bool kVector = pack_avx512_on_this_cpu();
}

void transpose32(const uint32_t* in, uint64_t is, uint64_t rows, uint64_t cols, uint32_t* out, uint64_t os,
                 bool stream) {
  if (kVector) transpose32_avx512(in, is, rows, cols, out, os, stream);
  else transpose32_scalar(in, is, rows, cols, out, os);
}
void gptq_to_awq(const uint32_t* g, uint64_t gs, uint64_t nrows, uint64_t n, uint32_t* awq, uint64_t as) {
  if (kVector) gptq_to_awq_avx512(g, gs, nrows, n, awq, as);
  else gptq_to_awq_scalar(g, gs, nrows, n, awq, as);
}
void awq_to_gptq(const uint32_t* awq, uint64_t as, uint64_t nrows, uint64_t n, uint32_t* g, uint64_t gs) {
  if (kVector) awq_to_gptq_avx512(awq, as, nrows, n, g, gs);
  else awq_to_gptq_scalar(awq, as, nrows, n, g, gs);
}
void words_to_awq(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t ncols, uint32_t* out, uint64_t os,
                  bool stream) {
  if (kVector) words_to_awq_avx512(words, ws, rows, ncols, out, os, stream);
  else words_to_awq_scalar(words, ws, rows, ncols, out, os);
}

}  // namespace detail

void int4_words_to_gptq(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t nwords, uint32_t* out, uint64_t os) {
  detail::transpose32(words, ws, rows, nwords, out, os);
}

void int4_gptq_to_words(const uint32_t* q, uint64_t qs, uint64_t rows, uint64_t nwords, uint32_t* words, uint64_t ws) {
  detail::transpose32(q, qs, nwords, rows, words, ws);
}

namespace {
// AWQ -> words: blocks of 128 rows x 64 words go through GPTQ layout in a cache-resident buffer.
constexpr uint64_t kBlockRows = 128, kBlockWords = 64;
}  // namespace

void int4_words_to_awq(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t nwords, uint32_t* out, uint64_t os) {
  if (rows % 8 != 0) throw std::logic_error("int4: AWQ packs whole groups of 8 rows");
  detail::words_to_awq(words, ws, rows, 8 * nwords, out, os);
}

void int4_awq_to_words(const uint32_t* q, uint64_t qs, uint64_t rows, uint64_t nwords, uint32_t* words, uint64_t ws) {
  if (rows % 8 != 0) throw std::logic_error("int4: AWQ packs whole groups of 8 rows");
  thread_local std::vector<uint32_t> tmp;
  tmp.resize(kBlockRows * kBlockWords);
  for (uint64_t r0 = 0; r0 < rows; r0 += kBlockRows)
    for (uint64_t j0 = 0; j0 < nwords; j0 += kBlockWords) {
      const uint64_t nr = std::min(kBlockRows, rows - r0), nj = std::min(kBlockWords, nwords - j0);
      detail::awq_to_gptq(q + 8 * j0 * qs + r0 / 8, qs, nj, nr, tmp.data(), kBlockRows);
      detail::transpose32(tmp.data(), kBlockRows, nj, nr, words + r0 * ws + j0, ws);
    }
}

}  // namespace ckpt::ops
