// Internal to lib/ops/marlin_layout*.cpp: the closed form one nibble at a time (the reference),
// the word-level repack of GPTQ-layout rows (scalar and AVX-512).
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
// GPTQ-layout rows [0, 2 kts) (`stride` words apart) from B rows [0, kts): the inverse.
void marlin_unpack_gptq_rows_scalar(const uint32_t* b, uint64_t n, uint64_t kts, uint32_t* q, uint64_t stride);
// The same bytes with AVX-512 (F, BW, VBMI); call only where marlin_avx512_on_this_cpu().
void marlin_unpack_gptq_rows_avx512(const uint32_t* b, uint64_t n, uint64_t kts, uint32_t* q, uint64_t stride);

}  // namespace ckpt::ops::detail
