// INT4 test inputs and whole-tensor expectations shared by the unit and GPU tests: weights with
// the hard cases (all-zero groups, exact rounding ties, outliers, tiny values, odd shapes) and
// every format's arrays computed through the scalar reference (int4_quantize_reference) and the
// packers (which tests/unit/test_int4_formats.cpp checks against the reference tools' packings).
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "ops/int4_quant.h"

namespace ckpt::test {

// float32 values stored as `dt` (BF16/F16 by RNE; the generators make most values exact).
std::vector<uint8_t> encode_floats(const std::vector<float>& v, DType dt);

// An [n, k] float32 weight of N(0, 0.02) values from `seed` (the spread of a trained Linear's).
std::vector<float> normal_weight(uint64_t n, uint64_t k, uint32_t seed);

// An [n, k] weight of dtype `dt` with, per row, a mix of: random normal groups, one all-zero
// group, groups whose amax is 7.5·2^e (so the symmetric scale is a power of two) holding exact
// half-integer multiples of it (rounding ties), values within a few ulps of (j + 1/2)·S for an F16
// scale S that is no power of two, all-positive groups, asymmetric ties with an odd zero, a large
// outlier, and tiny (subnormal-scale) values. Exact in F32; BF16/F16 round them.
std::vector<uint8_t> int4_hard_weight(uint64_t n, uint64_t k, uint64_t group, DType dt, uint32_t seed);

// One weight's stored arrays in a format, as little-endian bytes.
struct Int4Arrays {
  std::vector<uint32_t> weights, zeros;
  std::vector<uint8_t> scales;
  std::vector<int32_t> g_idx;
  std::vector<ops::Int4Params> params;  // [n][groups]
};
// The reference quantization of a whole [n, k] weight packed as `scheme.format` stores it.
// Fails the calling test (ADD_FAILURE) on an issue.
Int4Arrays int4_reference_arrays(const ops::Int4Scheme& scheme, DType dt, const std::vector<uint8_t>& w, uint64_t n,
                                 uint64_t k);

}  // namespace ckpt::test
