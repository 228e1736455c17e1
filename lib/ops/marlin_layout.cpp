#include "ops/marlin_layout.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "ops/int4_pack_detail.h"
#include "ops/int4_quant.h"
#include "ops/marlin_layout_detail.h"

namespace ckpt::ops {

std::string marlin_shape_problem(uint64_t n, uint64_t k) {
  const std::string shape = "[" + std::to_string(n) + ", " + std::to_string(k) + "]";
  if (n == 0 || k == 0) return "an empty weight " + shape + " has no Marlin layout";
  if (k % kMarlinTileK != 0)
    return "in_features " + std::to_string(k) + " of " + shape + " is not a multiple of 16 (Marlin's tile_k_size)";
  if (n % kMarlinTileN != 0)
    return "out_features " + std::to_string(n) + " of " + shape + " is not a multiple of 64 (Marlin's tile_n_size)";
  return "";
}

std::string marlin_kernel_shape_problem(uint64_t n, uint64_t k, int64_t group_size) {
  std::string why = marlin_shape_problem(n, k);
  if (why.empty() && k % 128 != 0)
    why = "in_features " + std::to_string(k) + " is not a multiple of 128 (vLLM GPTQ_MARLIN_MIN_THREAD_K)";
  if (why.empty() && group_size != -1 && group_size != 32 && group_size != 64 && group_size != 128)
    why = "group size " + std::to_string(group_size) + " is not one the Marlin kernel takes (-1, 32, 64, 128)";
  return why;
}

namespace detail {

uint32_t marlin_source_code(MarlinSource source, const uint32_t* src, uint64_t stride, uint64_t k, uint64_t n,
                            uint64_t k_base) {
  switch (source) {
    case MarlinSource::kGptq: return (src[(k / 8 - k_base / 8) * stride + n] >> (4 * (k % 8))) & 15u;
    case MarlinSource::kAwq: return (src[(k - k_base) * stride + n / 8] >> (4 * kAwqNibble[n % 8])) & 15u;
    case MarlinSource::kCompressedTensors: return (src[n * stride + (k / 8 - k_base / 8)] >> (4 * (k % 8))) & 15u;
  }
  return 0;
}

MarlinPlace marlin_place(uint64_t k, uint64_t n) {
  const uint64_t kr = k % 16, nr = n % 64;
  const uint64_t warp = nr / 16, blk = (nr % 16) / 8, col = nr % 8, hi = kr / 8, lo = kr % 8;
  const uint64_t th = 4 * col + lo / 2, src = 4 * blk + lo % 2 + 2 * hi;
  return {k / 16, 128 * (n / 64) + 4 * th + warp, static_cast<uint32_t>(4 * kMarlinNibble[src])};
}

// Word-level repack of GPTQ-layout rows: B's word (th, warp) of a tile gathers byte th % 4 of the
// words of columns c = 64 nt + 16 warp + th / 4 and c + 8 in K-rows 2kt (A0, B0) and 2kt + 1 (A1,
// B1): low nibbles of [A0, A1, B0, B1] into nibbles 0..3, high nibbles into 4..7.
void marlin_repack_gptq_rows_scalar(const uint32_t* q, uint64_t stride, uint64_t n, uint64_t kts, uint32_t* out) {
  for (uint64_t t = 0; t < kts; ++t) {
    const uint32_t* r0 = q + 2 * t * stride;
    const uint32_t* r1 = r0 + stride;
    uint32_t* o = out + t * 2 * n;
    for (uint64_t nt = 0; nt < n / 64; ++nt)
      for (uint64_t warp = 0; warp < 4; ++warp)
        for (uint64_t col = 0; col < 8; ++col) {
          const uint64_t c = 64 * nt + 16 * warp + col;
          const uint32_t a0 = r0[c], a1 = r1[c], b0 = r0[c + 8], b1 = r1[c + 8];
          for (uint64_t b = 0; b < 4; ++b) {
            const uint32_t s = 8 * static_cast<uint32_t>(b);
            const uint32_t x = ((a0 >> s) & 0xFF) | ((a1 >> s) & 0xFF) << 8 | ((b0 >> s) & 0xFF) << 16 | ((b1 >> s) & 0xFF) << 24;
            uint32_t l = x & 0x0F0F0F0Fu, h = (x >> 4) & 0x0F0F0F0Fu;
            l = (l | l >> 4) & 0x00FF00FFu;
            h = (h | h >> 4) & 0x00FF00FFu;
            l = (l | l >> 8) & 0xFFFFu;
            h = (h | h >> 8) & 0xFFFFu;
            o[128 * nt + 4 * (4 * col + b) + warp] = l | h << 16;
          }
        }
  }
}

// The inverse of marlin_repack_gptq_rows_scalar: the 4 Marlin words th = 4 col + b (b = 0..3) of
// a warp hold byte b of the GPTQ words A0, A1, B0, B1 of columns c and c + 8: spread each word's
// nibbles back into bytes [A0.b, A1.b, B0.b, B1.b], then a 4 x 4 byte transpose.
void marlin_unpack_gptq_rows_scalar(const uint32_t* b, uint64_t bs, uint64_t n, uint64_t kts, uint32_t* q,
                                    uint64_t stride) {
  auto spread = [](uint32_t v) {  // 16 bits -> nibble i into the low half of byte i
    v = (v | v << 8) & 0x00FF00FFu;
    return (v | v << 4) & 0x0F0F0F0Fu;
  };
  for (uint64_t t = 0; t < kts; ++t) {
    const uint32_t* row = b + t * bs;
    uint32_t* r0 = q + 2 * t * stride;
    uint32_t* r1 = r0 + stride;
    for (uint64_t nt = 0; nt < n / 64; ++nt)
      for (uint64_t warp = 0; warp < 4; ++warp)
        for (uint64_t col = 0; col < 8; ++col) {
          uint32_t x[4];
          for (uint64_t bb = 0; bb < 4; ++bb) {
            const uint32_t v = row[128 * nt + 4 * (4 * col + bb) + warp];
            x[bb] = spread(v & 0xFFFFu) | spread(v >> 16) << 4;
          }
          uint32_t out[4];  // A0, A1, B0, B1: byte bb of each from x[bb]
          for (int e = 0; e < 4; ++e)
            out[e] = ((x[0] >> (8 * e)) & 0xFF) | ((x[1] >> (8 * e)) & 0xFF) << 8 | ((x[2] >> (8 * e)) & 0xFF) << 16 |
                     ((x[3] >> (8 * e)) & 0xFF) << 24;
          const uint64_t c = 64 * nt + 16 * warp + col;
          r0[c] = out[0];
          r1[c] = out[1];
          r0[c + 8] = out[2];
          r1[c + 8] = out[3];
        }
  }
}

}  // namespace detail

void marlin_repack_reference(MarlinSource source, const uint32_t* src, uint64_t stride, uint64_t n, uint64_t k,
                             uint64_t kt0, uint64_t kt1, uint32_t* out) {
  std::fill(out, out + (kt1 - kt0) * 2 * n, 0u);
  for (uint64_t k_ = 16 * kt0; k_ < 16 * kt1; ++k_)
    for (uint64_t n_ = 0; n_ < n; ++n_) {
      const detail::MarlinPlace p = detail::marlin_place(k_, n_);
      out[(p.row - kt0) * 2 * n + p.word] |= detail::marlin_source_code(source, src, stride, k_, n_, 16 * kt0) << p.shift;
    }
}

namespace detail {

// Other sources than GPTQ, and AWQ without AVX-512, go through GPTQ-layout rows, a few K-tiles at
// a time (kept in cache).
constexpr uint64_t kThroughStep = 8;

void marlin_repack_through_gptq(MarlinSource source, const uint32_t* src, uint64_t stride, uint64_t n, uint64_t kts,
                                uint32_t* out, bool vec) {
  thread_local std::vector<uint32_t> tmp;
  tmp.resize(2 * kThroughStep * n);
  for (uint64_t t = 0; t < kts; t += kThroughStep) {
    const uint64_t step = std::min(kThroughStep, kts - t);
    if (source == MarlinSource::kCompressedTensors)
      transpose32(src + 2 * t, stride, n, 2 * step, tmp.data(), n);
    else
      awq_to_gptq(src + 16 * t * stride, stride, 2 * step, n, tmp.data(), n);
    vec ? marlin_repack_gptq_rows_avx512(tmp.data(), n, n, step, out + t * 2 * n)
        : marlin_repack_gptq_rows_scalar(tmp.data(), n, n, step, out + t * 2 * n);
  }
}

void marlin_unpack_through_gptq(MarlinSource target, const uint32_t* marlin, uint64_t marlin_stride, uint64_t n,
                                uint64_t kts, uint32_t* dst, uint64_t stride, bool vec) {
  thread_local std::vector<uint32_t> tmp;
  tmp.resize(2 * kThroughStep * n);
  for (uint64_t t = 0; t < kts; t += kThroughStep) {
    const uint64_t step = std::min(kThroughStep, kts - t);
    vec ? marlin_unpack_gptq_rows_avx512(marlin + t * marlin_stride, marlin_stride, n, step, tmp.data(), n)
        : marlin_unpack_gptq_rows_scalar(marlin + t * marlin_stride, marlin_stride, n, step, tmp.data(), n);
    if (target == MarlinSource::kCompressedTensors)
      transpose32(tmp.data(), n, 2 * step, n, dst + 2 * t, stride);
    else
      gptq_to_awq(tmp.data(), n, 2 * step, n, dst + 16 * t * stride, stride);
  }
}

}  // namespace detail

void marlin_repack(MarlinSource source, const uint32_t* src, uint64_t stride, uint64_t n, uint64_t k, uint64_t kt0,
                   uint64_t kt1, uint32_t* out) {
  static const bool vec = detail::marlin_avx512_on_this_cpu();
  const uint64_t kts = kt1 - kt0;
  if (source == MarlinSource::kGptq)
    return vec ? detail::marlin_repack_gptq_rows_avx512(src, stride, n, kts, out)
               : detail::marlin_repack_gptq_rows_scalar(src, stride, n, kts, out);
  if (vec)
    return source == MarlinSource::kAwq ? detail::marlin_repack_awq_rows_avx512(src, stride, n, kts, out)
                                        : detail::marlin_repack_ct_rows_avx512(src, stride, n, kts, out);
  detail::marlin_repack_through_gptq(source, src, stride, n, kts, out, false);
}

void marlin_unpack(MarlinSource source, const uint32_t* marlin, uint64_t ms, uint64_t n, uint64_t k, uint64_t kt0,
                   uint64_t kt1, uint32_t* dst, uint64_t stride) {
  static const bool vec = detail::marlin_avx512_on_this_cpu();
  const uint64_t kts = kt1 - kt0;
  if (source == MarlinSource::kGptq)
    return vec ? detail::marlin_unpack_gptq_rows_avx512(marlin, ms, n, kts, dst, stride)
               : detail::marlin_unpack_gptq_rows_scalar(marlin, ms, n, kts, dst, stride);
  if (source == MarlinSource::kAwq && vec) return detail::marlin_unpack_awq_rows_avx512(marlin, ms, n, kts, dst, stride);
  detail::marlin_unpack_through_gptq(source, marlin, ms, n, kts, dst, stride, vec);
}

void marlin_unpack_reference(MarlinSource source, const uint32_t* marlin, uint64_t n, uint64_t k, uint64_t kt0,
                             uint64_t kt1, uint32_t* dst, uint64_t stride) {
  // Clear the destination words of these K-rows, then place every nibble.
  const uint64_t k0 = 16 * kt0, k1 = 16 * kt1;
  switch (source) {
    case MarlinSource::kGptq:
      for (uint64_t r = 0; r < (k1 - k0) / 8; ++r) std::fill(dst + r * stride, dst + r * stride + n, 0u);
      break;
    case MarlinSource::kAwq:
      for (uint64_t r = 0; r < k1 - k0; ++r) std::fill(dst + r * stride, dst + r * stride + n / 8, 0u);
      break;
    case MarlinSource::kCompressedTensors:
      for (uint64_t r = 0; r < n; ++r) std::fill(dst + r * stride, dst + r * stride + (k1 - k0) / 8, 0u);
      break;
  }
  for (uint64_t k_ = k0; k_ < k1; ++k_)
    for (uint64_t n_ = 0; n_ < n; ++n_) {
      const detail::MarlinPlace p = detail::marlin_place(k_, n_);
      const uint32_t q = (marlin[(p.row - kt0) * 2 * n + p.word] >> p.shift) & 15u;
      switch (source) {
        case MarlinSource::kGptq: dst[(k_ - k0) / 8 * stride + n_] |= q << (4 * (k_ % 8)); break;
        case MarlinSource::kAwq: dst[(k_ - k0) * stride + n_ / 8] |= q << (4 * kAwqNibble[n_ % 8]); break;
        case MarlinSource::kCompressedTensors: dst[n_ * stride + (k_ - k0) / 8] |= q << (4 * (k_ % 8)); break;
      }
    }
}

// ---- act-order -----------------------------------------------------------------------------

bool marlin_sort_g_idx(const int32_t* g_idx, uint64_t k, uint64_t groups, int32_t* sorted, int32_t* perm) {
  // A counting sort: stable by construction, linear in K.
  std::vector<uint64_t> start(groups + 1, 0);
  for (uint64_t i = 0; i < k; ++i) {
    if (g_idx[i] < 0 || static_cast<uint64_t>(g_idx[i]) >= groups) return false;
    ++start[static_cast<uint64_t>(g_idx[i]) + 1];
  }
  for (uint64_t g = 0; g < groups; ++g) start[g + 1] += start[g];
  for (uint64_t i = 0; i < k; ++i) {
    const uint64_t at = start[static_cast<uint64_t>(g_idx[i])]++;
    perm[at] = static_cast<int32_t>(i);
    sorted[at] = g_idx[i];
  }
  return true;
}

void marlin_gather_sorted_k(MarlinSource source, const uint32_t* src, uint64_t stride, uint64_t n, uint64_t k,
                            const int32_t* perm, uint64_t k0, uint64_t k1, uint32_t* out, uint64_t out_stride) {
  if (source == MarlinSource::kAwq) throw std::logic_error("marlin: AWQ has no act-order");
  for (uint64_t r = 0; r < (k1 - k0) / 8; ++r) std::fill(out + r * out_stride, out + r * out_stride + n, 0u);
  for (uint64_t k_ = k0; k_ < k1; ++k_) {
    const uint64_t from = static_cast<uint64_t>(perm[k_]);
    uint32_t* o = out + (k_ - k0) / 8 * out_stride;
    const uint32_t shift_out = 4 * (k_ % 8), shift_in = 4 * (from % 8);
    if (source == MarlinSource::kGptq) {
      const uint32_t* row = src + (from / 8) * stride;
      for (uint64_t n_ = 0; n_ < n; ++n_) o[n_] |= ((row[n_] >> shift_in) & 15u) << shift_out;
    } else {
      for (uint64_t n_ = 0; n_ < n; ++n_) o[n_] |= ((src[n_ * stride + from / 8] >> shift_in) & 15u) << shift_out;
    }
  }
}

void marlin_scatter_sorted_k(MarlinSource source, const uint32_t* sorted, uint64_t sorted_stride, uint64_t n,
                             uint64_t k, const int32_t* perm, uint32_t* dst, uint64_t stride) {
  if (source == MarlinSource::kAwq) throw std::logic_error("marlin: AWQ has no act-order");
  if (source == MarlinSource::kGptq)
    for (uint64_t r = 0; r < k / 8; ++r) std::fill(dst + r * stride, dst + r * stride + n, 0u);
  else
    for (uint64_t r = 0; r < n; ++r) std::fill(dst + r * stride, dst + r * stride + k / 8, 0u);
  for (uint64_t k_ = 0; k_ < k; ++k_) {
    const uint64_t to = static_cast<uint64_t>(perm[k_]);
    const uint32_t* row = sorted + (k_ / 8) * sorted_stride;
    const uint32_t shift_in = 4 * (k_ % 8), shift_out = 4 * (to % 8);
    for (uint64_t n_ = 0; n_ < n; ++n_) {
      const uint32_t q = ((row[n_] >> shift_in) & 15u) << shift_out;
      if (source == MarlinSource::kGptq) dst[(to / 8) * stride + n_] |= q;
      else dst[n_ * stride + to / 8] |= q;
    }
  }
}

// ---- scales, bias, zero points -------------------------------------------------------------

namespace {

// The position within its chunk that output element p takes its value from.
uint64_t grouped_from(uint64_t p) { return (p / 64) * 64 + (p % 64) / 8 + 8 * (p % 8); }
uint64_t channel_from(uint64_t p) {
  static constexpr uint64_t off[8] = {0, 1, 8, 9, 16, 17, 24, 25};
  return (p / 32) * 32 + 2 * ((p % 32) / 8) + off[p % 8];
}

bool grouped_scales(uint64_t k, int64_t group_size) {
  return group_size != -1 && static_cast<uint64_t>(group_size) < k;  // marlin_permute_scales' test
}

void permute_rows(const uint8_t* in, size_t es, uint64_t n, uint64_t rows, bool grouped, bool inverse, uint8_t* out) {
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t p = 0; p < n; ++p) {
      const uint64_t f = grouped ? grouped_from(p) : channel_from(p);
      const uint64_t dst = inverse ? f : p, src = inverse ? p : f;
      std::memcpy(out + (r * n + dst) * es, in + (r * n + src) * es, es);
    }
}

}  // namespace

void marlin_permute_scales(const uint8_t* in, size_t es, uint64_t n, uint64_t k, int64_t group_size, uint64_t g0,
                           uint64_t g1, uint8_t* out) {
  permute_rows(in, es, n, g1 - g0, grouped_scales(k, group_size), false, out);
}
void marlin_unpermute_scales(const uint8_t* in, size_t es, uint64_t n, uint64_t k, int64_t group_size, uint64_t g0,
                             uint64_t g1, uint8_t* out) {
  permute_rows(in, es, n, g1 - g0, grouped_scales(k, group_size), true, out);
}
void marlin_permute_bias(const uint8_t* in, size_t es, uint64_t n, uint8_t* out) {
  permute_rows(in, es, n, 1, false, false, out);
}
void marlin_unpermute_bias(const uint8_t* in, size_t es, uint64_t n, uint8_t* out) {
  permute_rows(in, es, n, 1, false, true, out);
}

bool marlin_pack_zero_points(const uint8_t* z, uint64_t groups, uint64_t n, uint32_t* out) {
  for (uint64_t i = 0; i < groups * n; ++i)
    if (z[i] > 15) return false;
  for (uint64_t g = 0; g < groups; ++g)
    for (uint64_t m = 0; m < n / 8; ++m) {
      uint32_t w = 0;
      for (int i = 0; i < 8; ++i)  // the grouped permutation, then the interleave
        w |= static_cast<uint32_t>(z[g * n + grouped_from(8 * m + static_cast<uint64_t>(kAwqOrder[i]))]) << (4 * i);
      out[g * (n / 8) + m] = w;
    }
  return true;
}

bool marlin_zero_points_from(MarlinSource source, int zero_offset, const uint32_t* zeros, uint64_t groups, uint64_t n,
                             uint32_t* out) {
  std::vector<uint8_t> z(groups * n);
  for (uint64_t g = 0; g < groups; ++g)
    for (uint64_t c = 0; c < n; ++c) {
      uint32_t v = 0;
      switch (source) {
        case MarlinSource::kGptq:
          v = ((zeros[g * (n / 8) + c / 8] >> (4 * (c % 8))) & 15u) + static_cast<uint32_t>(zero_offset);
          break;
        case MarlinSource::kAwq: v = (zeros[g * (n / 8) + c / 8] >> (4 * kAwqNibble[c % 8])) & 15u; break;
        case MarlinSource::kCompressedTensors: v = (zeros[(c / 8) * groups + g] >> (4 * (c % 8))) & 15u; break;
      }
      z[g * n + c] = static_cast<uint8_t>(v);
    }
  return marlin_pack_zero_points(z.data(), groups, n, out);
}

void marlin_unpack_zero_points(const uint32_t* zp, uint64_t groups, uint64_t n, uint8_t* z) {
  for (uint64_t g = 0; g < groups; ++g)
    for (uint64_t m = 0; m < n / 8; ++m)
      for (int i = 0; i < 8; ++i)
        z[g * n + grouped_from(8 * m + static_cast<uint64_t>(kAwqOrder[i]))] =
            static_cast<uint8_t>((zp[g * (n / 8) + m] >> (4 * i)) & 15u);
}

}  // namespace ckpt::ops
