// Shared between ggml's reference encoders (ggml_blocks_ref.cpp) and their fast paths
// (ggml_blocks.cpp): the K-quant super-block is encoded by one code path whose costly part, the
// per-sub-block scale search, is passed in, so a fast search reuses the packing unchanged.
#pragma once

#include <cstdint>

#include "ops/ggml_blocks.h"

namespace ckpt::ops {

// The sub-block searches of ggml's K-quant super-blocks (256 floats at x), each as
// ggml-quants.c's quantize_row_q*_K_ref runs it per sub-block.
struct KQuantSearch {
  // Q4_K, Q5_K: for each of the 8 sub-blocks of 32, ggml's weights (the sub-block's root mean
  // square plus |x|) and make_qkx2_quants(32, nmax, ..., rmin, 0.1f, nstep), giving scales[j],
  // mins[j] (the negated minimum, as ggml stores it) and the quants L[32 j .. 32 j + 31] (0..nmax).
  void (*scale_min)(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins, uint8_t* L);
  // Q6_K: for each of the 16 sub-blocks of 16, make_qx_quants(16, 32, ...) (rmse_type 1, no
  // importance weights), giving scales[j] and the quants L[16 j .. 16 j + 15] (0..63).
  void (*scale)(const float* x, float* scales, int8_t* L);
};

// ggml's own loop order, one sub-block after another.
extern const KQuantSearch kKQuantSearchReference;

// Encodes n floats (whole super-blocks of 256) as Q4_K, Q5_K or Q6_K, as the reference does, with
// `search` for the sub-block searches.
void encode_k_quants(GgmlType t, const float* x, uint8_t* out, uint64_t n, const KQuantSearch& search);

}  // namespace ckpt::ops
