#include "validate/gemm_check.h"

#include <cmath>
#include <cstdio>

#include "core/sizes.h"
#include "model/linear.h"
#include "validate/activations.h"
#include "validate/dequantize.h"

namespace ckpt::validate {

double GemmStats::relative_error() const {
  if (max_abs_ref > 0) return max_abs_err / max_abs_ref;
  return max_abs_err > 0 ? INFINITY : 0.0;
}

void GemmStats::add(double y, double ref) {
  if (!std::isfinite(y) || !std::isfinite(ref)) {
    ++nonfinite;
    return;
  }
  max_abs_err = std::max(max_abs_err, std::fabs(y - ref));
  max_abs_ref = std::max(max_abs_ref, std::fabs(ref));
}

void GemmStats::merge(const GemmStats& o) {
  max_abs_err = std::max(max_abs_err, o.max_abs_err);
  max_abs_ref = std::max(max_abs_ref, o.max_abs_ref);
  nonfinite += o.nonfinite;
}

double relative_tolerance(DType out, bool rounded_weights) {
  // Half-ulp of the stored result: f32 2^-24, f16 2^-11, bf16 2^-8 (relative); the bound is
  // about 8x that, plus as much again when the weights were rounded to that dtype first.
  double unit;
  switch (out) {
    case DType::F32: unit = 1.25e-5; break;  // dominated by float accumulation over large K
    case DType::F16: unit = 4e-3; break;
    default: unit = 1.6e-2; break;
  }
  return rounded_weights ? 2 * unit : unit;
}

std::string judge(const GemmStats& s, double tolerance) {
  char buf[160];
  if (s.nonfinite) {
    return count_of(s.nonfinite, "output") + (s.nonfinite == 1 ? " is" : " are") + " NaN/Inf";
  }
  if (!(s.relative_error() <= tolerance)) {
    std::snprintf(buf, sizeof buf, "relative error %.3g exceeds the bound %.3g (max |ref| %.3g)", s.relative_error(),
                  tolerance, s.max_abs_ref);
    return buf;
  }
  return "";
}

GemmStats cpu_gemm_check(const model::LinearWeights& w, uint64_t batch) {
  const uint64_t k = w.in_features();
  std::vector<double> x(batch * k);
  for (uint64_t b = 0; b < batch; ++b)
    for (uint64_t c = 0; c < k; ++c) x[b * k + c] = activation_value(b, c);
  std::vector<double> row(k);
  GemmStats stats;
  for (uint64_t n = 0; n < w.out_features(); ++n) {
    w.dequantize_rows(n, 1, row.data());
    for (uint64_t b = 0; b < batch; ++b) {
      double ref = 0;
      float y = 0;
      for (uint64_t c = 0; c < k; ++c) {
        ref += x[b * k + c] * row[c];
        y += static_cast<float>(x[b * k + c]) * static_cast<float>(row[c]);
      }
      stats.add(y, ref);
    }
  }
  return stats;
}

}  // namespace ckpt::validate
