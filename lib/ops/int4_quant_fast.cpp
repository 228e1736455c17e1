// The CPU fast paths of INT4 quantization and their dispatch: a portable loop (a group widened to
// float32 once, scanned, then coded eight columns to a word), the AVX2 loop (int4_quant_avx2.cpp)
// and the AVX-512 loop (int4_quant_avx512.cpp). All give int4_quantize_reference's bytes and issues.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "ops/float_bits.h"
#include "ops/int4_pack_detail.h"
#include "ops/int4_quant_detail.h"

namespace ckpt::ops {

namespace {

using detail::int4_issue;

Int4Issue quantize_portable(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t kb,
                            uint64_t ke, Int4Params* params, uint32_t* words, uint64_t ws, Fp8ErrorStats* stats) {
  const uint64_t ng = src.cols / geo.group, nwords = (ke - kb + 7) / 8;
  const size_t esize = dtype_bits(src.dtype) / 8;
  thread_local std::vector<float> x;
  x.resize(geo.group);
  for (uint64_t r = 0; r < src.rows; ++r) {
    uint32_t* out = words + r * ws;
    std::fill(out, out + nwords, 0u);
    const uint8_t* row = src.data + r * src.stride * esize;
    for (uint64_t j = 0; j < ng; ++j) {
      const uint64_t g0 = src.col0 + j * geo.group;
      const uint8_t* in = row + (g0 - src.col0) * esize;
      for (uint64_t i = 0; i < geo.group; ++i) x[i] = load_as_f32(in, src.dtype, i);
      // Scan on the magnitude bits: non-finite values have the largest (as in the reference,
      // the first one in column order is reported).
      uint32_t mbits = 0;
      float lo = 0, hi = 0;
      for (uint64_t i = 0; i < geo.group; ++i) {
        mbits = std::max(mbits, f32_bits(x[i]) & 0x7FFFFFFFu);
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
      }
      if (mbits >= 0x7F800000u) {
        uint64_t i = 0;
        while (std::isfinite(x[i])) ++i;
        return int4_issue(Int4Issue::kNonFinite, src.row0 + r, g0 + i, x[i]);
      }
      Int4Params& p = params[r * ng + j];
      const float amax = f32_from_bits(mbits);
      if (!detail::int4_group_params(s, amax, lo, hi, &p))
        return int4_issue(Int4Issue::kScaleOverflow, src.row0 + r, g0, s.symmetric ? amax : hi - lo);
      const uint64_t a = std::max(kb, g0), b = std::min(ke, g0 + geo.group);
      double sq_err = 0, sq = 0, max_err = 0;
      for (uint64_t k = a; k < b; ++k) {
        const float v = x[k - g0];
        const uint32_t q = int4_code(v, p.scale, p.zero);
        out[(k - kb) / 8] |= q << (4 * (k % 8));
        if (stats) {
          const float e = v - int4_dequant(q, p.zero, p.scale);
          sq_err += static_cast<double>(e) * e;
          sq += static_cast<double>(v) * v;
          max_err = std::max(max_err, static_cast<double>(std::fabs(e)));
        }
      }
      if (stats) {
        stats->sum_sq_err += sq_err;
        stats->sum_sq += sq;
        stats->max_abs_err = std::max(stats->max_abs_err, max_err);
      }
    }
  }
  return {};
}

}  // namespace

const char* int4_path_name(Int4Path p) {
  switch (p) {
    case Int4Path::kPortable: return "portable";
    case Int4Path::kAvx2: return "avx2";
    case Int4Path::kAvx512: return "avx512";
  }
  return "?";
}

std::vector<Int4Path> int4_paths_on_this_cpu() {
  std::vector<Int4Path> paths{Int4Path::kPortable};
  if (detail::int4_avx2_on_this_cpu()) paths.push_back(Int4Path::kAvx2);
  if (detail::int4_avx512_on_this_cpu()) paths.push_back(Int4Path::kAvx512);
  return paths;
}

Int4Issue int4_quantize_fast_on(Int4Path path, const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src,
                                uint64_t kb, uint64_t ke, Int4Params* params, uint32_t* words, uint64_t ws,
                                Fp8ErrorStats* stats) {
  detail::int4_check_block(geo, src, kb, ke);
  // The vector loops write whole words per group: groups must end on word boundaries.
  if (path == Int4Path::kAvx512 && geo.group % 8 == 0)
    return detail::int4_quantize_avx512(s, geo, src, kb, ke, params, words, ws, stats);
  if (path == Int4Path::kAvx2 && geo.group % 8 == 0)
    return detail::int4_quantize_avx2(s, geo, src, kb, ke, params, words, ws, stats);
  return quantize_portable(s, geo, src, kb, ke, params, words, ws, stats);
}

Int4Issue int4_quantize_fast(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t kb,
                             uint64_t ke, Int4Params* params, uint32_t* words, uint64_t ws, Fp8ErrorStats* stats) {
  static const Int4Path best = int4_paths_on_this_cpu().back();
  return int4_quantize_fast_on(best, s, geo, src, kb, ke, params, words, ws, stats);
}

Int4Issue int4_quantize_qweight(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src,
                                Int4Params* params, uint32_t* qweight, Fp8ErrorStats* stats) {
  const bool gptq = s.format == Int4Format::kGptq;
  if ((!gptq && s.format != Int4Format::kAwq) || src.col0 != 0 || src.cols != geo.k ||
      (!gptq && (src.row0 % 8 != 0 || src.rows % 8 != 0)))
    throw std::logic_error("int4_quantize_qweight: not a GPTQ/AWQ block of whole rows (of whole groups of 8 for AWQ)");
  // 16 rows: a 64-byte line of GPTQ's [K/8, N] (one 16 x 16 transpose tile); 128 rows: one of
  // AWQ's [K, N/8].
  const uint64_t piece = gptq ? 16 : 128, W = (geo.k + 7) / 8, esize = dtype_bits(src.dtype) / 8;
  thread_local std::vector<uint32_t> words;
  words.resize(piece * W);
  for (uint64_t r = 0; r < src.rows;) {
    const uint64_t row = src.row0 + r;
    const uint64_t rows = std::min(src.rows - r, (row / piece + 1) * piece - row);
    Int4Source part = src;
    part.data = src.data + r * src.stride * esize;
    part.row0 = row;
    part.rows = rows;
    if (Int4Issue i = int4_quantize_fast(s, geo, part, 0, geo.k, params + r * geo.groups, words.data(), W, stats)) {
      detail::stream_fence();
      return i;
    }
    if (gptq) detail::transpose32(words.data(), W, rows, W, qweight + row, geo.n, true);
    else detail::words_to_awq(words.data(), W, rows, geo.k, qweight + row / 8, geo.n / 8, true);
    r += rows;
  }
  detail::stream_fence();
  return {};
}

}  // namespace ckpt::ops
