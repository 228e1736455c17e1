// Internal to lib/ops/int4_quant*.cpp: the scheme as the shared math's ints, one group's
// parameters from its range, and the vector loops (int4_quant_avx2.cpp, int4_quant_avx512.cpp).
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/int4_math.h"
#include "ops/int4_quant.h"

namespace ckpt::ops::detail {

int int4_scale_type(DType t);
int int4_format_id(Int4Format f);
// Throws std::logic_error unless the block is whole groups and [kb, ke) lies inside it on word
// boundaries (a caller's bug, not bad input).
void int4_check_block(const Int4Geometry& geo, const Int4Source& src, uint64_t kb, uint64_t ke);

// A group's parameters from its float32 range: `amax` (symmetric) or lo <= 0 <= hi (asymmetric).
// Returns false when the scale overflows its dtype (or the float32 range).
inline bool int4_group_params(const Int4Scheme& s, float amax, float lo, float hi, Int4Params* p) {
  const int type = int4_scale_type(s.scale_dtype);
  if (s.symmetric ? amax == 0.0f : hi == lo) {
    p->scale = int4_zero_group_scale(int4_format_id(s.format), type);
    p->zero = static_cast<uint8_t>(int4_zero_group_zero(int4_format_id(s.format), s.symmetric));
    return true;
  }
  const float scale = s.symmetric ? int4_sym_scale(amax, type) : int4_asym_scale(lo, hi, type);
  if (!(scale < 3.4e38f)) return false;  // +Inf: the range does not fit the scale dtype
  p->scale = scale;
  p->zero = static_cast<uint8_t>(s.symmetric ? 8u : int4_asym_zero(lo, scale));
  return true;
}

// The issue for a non-finite element / an overflowing group.
inline Int4Issue int4_issue(Int4Issue::Kind kind, uint64_t row, uint64_t col, float value) {
  Int4Issue i;
  i.kind = kind;
  i.row = row;
  i.col = col;
  i.value = value;
  return i;
}

// For the vector loops, which scan a batch of groups [j0, j0 + nb) of block row r at once: the
// first issue in column order once the batch has a non-finite value or a group whose scale
// overflowed (bit b of `overflow`: group j0 + b), found again by a scalar scan that names it.
inline Int4Issue int4_batch_issue(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t r,
                                  uint64_t j0, uint64_t nb, uint32_t overflow, const float* amax, const float* lo,
                                  const float* hi) {
  const uint64_t G = geo.group, esize = dtype_bits(src.dtype) / 8;
  for (uint64_t b = 0; b < nb; ++b) {
    const uint64_t g0 = src.col0 + (j0 + b) * G;
    const uint8_t* in = src.data + (r * src.stride + (j0 + b) * G) * esize;
    for (uint64_t i = 0; i < G; ++i)
      if (!std::isfinite(load_as_f32(in, src.dtype, i)))
        return int4_issue(Int4Issue::kNonFinite, src.row0 + r, g0 + i, load_as_f32(in, src.dtype, i));
    if (overflow & (1u << b))
      return int4_issue(Int4Issue::kScaleOverflow, src.row0 + r, g0, s.symmetric ? amax[b] : hi[b] - lo[b]);
  }
  return {};
}

// A vector loop's batch of parameters (float lanes) into params[j0, j0 + nb) of a block row.
inline void int4_store_batch(Int4Params* row_params, uint64_t j0, uint64_t nb, const float* scale, const float* zero) {
  for (uint64_t b = 0; b < nb; ++b) {
    row_params[j0 + b].scale = scale[b];
    row_params[j0 + b].zero = static_cast<uint8_t>(zero[b]);
  }
}

// The vector loops' scan asks for the source line kPrefetchAhead bytes ahead of each one it reads.
// The source is read once, straight from the page cache: every 4 KiB page is a new stream to the
// hardware prefetcher, which does not cross pages, so each page's first lines were waited for (a
// fifth of the loop's samples sat on the first load of a group). One page ahead cut the user CPU of
// `quantize --int4` on the 2-core machine by 10-20 % (gptq 0.91 -> 0.72 s, awq 0.95 -> 0.86 s;
// 8 and 16 KiB ahead measured the same). A prefetch never faults: past the block's end it is moot.
inline constexpr uint64_t kPrefetchAhead = 4096;
inline void int4_prefetch_ahead(const uint8_t* p) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + kPrefetchAhead), 0, 3);
}

// Whether this CPU has what the AVX-512 loop needs: AVX-512 F, BW, DQ and VL.
bool int4_avx512_on_this_cpu();
// int4_quantize_fast on AVX-512; call only where int4_avx512_on_this_cpu().
Int4Issue int4_quantize_avx512(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Source& src, uint64_t kb,
                               uint64_t ke, Int4Params* params, uint32_t* words, uint64_t words_stride,
                               Fp8ErrorStats* stats);

// Whether this CPU has what the AVX2 loop needs: AVX2, F16C and FMA.
bool int4_avx2_on_this_cpu();
// int4_quantize_fast on AVX2; call only where int4_avx2_on_this_cpu() and the group is a multiple of 8.
Int4Issue int4_quantize_avx2(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Source& src, uint64_t kb,
                             uint64_t ke, Int4Params* params, uint32_t* words, uint64_t words_stride,
                             Fp8ErrorStats* stats);

}  // namespace ckpt::ops::detail
