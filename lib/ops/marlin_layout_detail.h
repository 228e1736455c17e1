// Internal to lib/ops/marlin_layout*.cpp: the closed form one nibble at a time (the reference),
// the word-level repack of GPTQ-layout rows (scalar and AVX-512) and of AWQ rows (AVX-512).
#pragma once

#include <cstdint>

#include "ops/marlin_layout.h"

namespace ckpt::ops::detail {

// Where code (k, n) lands in B: row, word of the row, and bit shift.
struct MarlinPlace {
  uint64_t row, word;
  uint32_t shift;
};
MarlinPlace marlin_place(uint64_t k, uint64_t n);

// Code (k, n) of a source array laid out as marlin_repack's `src` (rows from K-row k_base).
uint32_t marlin_source_code(MarlinSource source, const uint32_t* src, uint64_t stride, uint64_t k, uint64_t n,
                            uint64_t k_base);

// B rows [0, kts) from GPTQ-layout rows [0, 2 kts) (`stride` words apart).
void marlin_repack_gptq_rows_scalar(const uint32_t* q, uint64_t stride, uint64_t n, uint64_t kts, uint32_t* out);
// The same bytes with AVX-512 (F, BW, VBMI); call only where marlin_avx512_on_this_cpu().
void marlin_repack_gptq_rows_avx512(const uint32_t* q, uint64_t stride, uint64_t n, uint64_t kts, uint32_t* out);
bool marlin_avx512_on_this_cpu();
// GPTQ-layout rows [0, 2 kts) (`stride` words apart) from B rows [0, kts) (`bs` words apart): the
// inverse.
void marlin_unpack_gptq_rows_scalar(const uint32_t* b, uint64_t bs, uint64_t n, uint64_t kts, uint32_t* q,
                                    uint64_t stride);
// The same bytes with AVX-512 (F, BW, VBMI); call only where marlin_avx512_on_this_cpu().
void marlin_unpack_gptq_rows_avx512(const uint32_t* b, uint64_t bs, uint64_t n, uint64_t kts, uint32_t* q,
                                    uint64_t stride);
// B rows [0, kts) from AWQ rows [0, 16 kts) (`stride` words apart, N/8 words used) and back, with
// AVX-512 (F, BW, VBMI) in one pass; call only where marlin_avx512_on_this_cpu(). Elsewhere AWQ
// goes through GPTQ-layout rows (awq_to_gptq / gptq_to_awq and the scalar loops above).
void marlin_repack_awq_rows_avx512(const uint32_t* q, uint64_t stride, uint64_t n, uint64_t kts, uint32_t* out);
void marlin_unpack_awq_rows_avx512(const uint32_t* b, uint64_t bs, uint64_t n, uint64_t kts, uint32_t* q,
                                   uint64_t stride);
// B rows [0, kts) from compressed-tensors weight_packed (`wp` at word 2 kt0 of row 0, rows `stride`
// words apart) with AVX-512 (F, BW, VBMI) in one pass; call only where marlin_avx512_on_this_cpu().
void marlin_repack_ct_rows_avx512(const uint32_t* wp, uint64_t stride, uint64_t n, uint64_t kts, uint32_t* out);
// compressed-tensors (and AWQ without AVX-512 VBMI) through GPTQ-layout rows a few K-tiles at a
// time: transpose32 / awq_to_gptq (int4_pack_detail.h, dispatched), then the GPTQ rows (and back;
// `vec`: the AVX-512 rows kernels, else the scalar ones). Arguments as marlin_repack /
// marlin_unpack's for rows [0, kts).
void marlin_repack_through_gptq(MarlinSource source, const uint32_t* src, uint64_t stride, uint64_t n, uint64_t kts,
                                uint32_t* out, bool vec);
void marlin_unpack_through_gptq(MarlinSource target, const uint32_t* marlin, uint64_t marlin_stride, uint64_t n,
                                uint64_t kts, uint32_t* dst, uint64_t stride, bool vec);

}  // namespace ckpt::ops::detail
