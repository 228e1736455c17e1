// Shared between ggml's reference encoders (ggml_blocks_ref.cpp) and their fast paths
// (ggml_blocks.cpp): the K-quant super-block is encoded by one code path whose costly part, the
// per-sub-block scale search, is passed in, so a fast search reuses the packing unchanged.
#pragma once

#include <cstdint>

#include "ops/ggml_blocks.h"

namespace ckpt::ops {

// For each of the 8 sub-blocks of 32 floats at x: ggml's weights (the sub-block's root mean square
// plus |x|) and make_qkx2_quants(32, nmax, ..., rmin, 0.1f, nstep), giving scales[j], mins[j] (the
// negated minimum, as ggml stores it) and the quants L[32 j .. 32 j + 31] (0..nmax).
using KQuantSearch = void (*)(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins,
                              uint8_t* L);

// ggml's own loop order, one sub-block after another (ggml-quants.c quantize_row_q4_K_ref).
void k_quant_search_reference(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins,
                              uint8_t* L);

// Encodes n floats (whole super-blocks of 256) as Q4_K or Q5_K, as the reference does, with
// `search` for the sub-block search.
void encode_k_quants(GgmlType t, const float* x, uint8_t* out, uint64_t n, KQuantSearch search);

}  // namespace ckpt::ops
