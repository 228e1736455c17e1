// Judging a GEMM result against the reference computed from the dequantized weights in double
// precision: the largest error relative to the largest reference magnitude, bounded per output
// dtype, and no NaN/Inf anywhere. The CPU check below and the GPU warm-up share these rules.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "validate/linear_weights.h"

namespace ckpt::model {
class LinearWeights;
}

namespace ckpt::validate {

struct GemmStats {
  double max_abs_err = 0;  // max |y - ref|
  double max_abs_ref = 0;  // max |ref|
  uint64_t nonfinite = 0;  // outputs that are NaN or Inf
  // max_abs_err / max_abs_ref (0 when both are 0; Inf when the reference is 0 and y is not).
  double relative_error() const;
  void add(double y, double ref);
  void merge(const GemmStats& o);
};

// The error bound, relative to max |reference|, for a GEMM whose result is stored as `out`
// (F32, F16 or BF16). A path that rounds dequantized FP8 weights to the activation dtype before
// the GEMM (dequantize + GEMM) gets that rounding's share on top. Bounds are a few times the
// half-ulp of the stored result, so a wrong scale layout or a corrupted weight fails them.
double relative_tolerance(DType out, bool rounded_weights);

// Empty when the stats pass, else the reason ("relative error 0.31 > 0.016", "3 outputs NaN/Inf").
std::string judge(const GemmStats& s, double tolerance);

// y = x * W^T for `batch` rows of the shared activations (activations.h), computed twice on the
// CPU: in double (the reference) and with float weights and float accumulation (the check), each
// row of W from the weight's one dequantization (model::LinearWeights: validate::dequantize_rows
// for dense and FP8, ops::int4_decode for INT4).
GemmStats cpu_gemm_check(const model::LinearWeights& w, uint64_t batch);

}  // namespace ckpt::validate
