// How far one activation is from another of the same shape ([rows][width], row-major): the sums
// validate --against judges a Linear by (its relative error, the worst row's cosine, where the
// largest difference sits), computed here from host doubles. The CUDA backend reduces device
// activations to the same numbers (kernels/runtime/compare_kernels.h), so that compare_models
// (lib/model/compare.cpp) judges both backends' results with one piece of code.
#pragma once

#include <cmath>
#include <cstdint>

namespace ckpt::model {

struct ActivationDiff {
  double sum_sq_diff = 0;  // Σ (other − ref)²
  double sum_sq_ref = 0;   // Σ ref²
  // The first largest |other − ref| (row-major order) and its flat index; -1 when every
  // difference is NaN or there are none.
  double max_abs_diff = -1;
  uint64_t max_at = 0;
  double min_row_cosine = 1;  // the least cosine similarity of a row of ref and the same row of other
  // Σ (α_c · other − ref)² with α_c = max(0, ⟨ref_c, other_c⟩ / ⟨other_c, other_c⟩) the least-squares
  // positive scale of column c (see awq_may_rescale in compare.cpp); NaN when not asked for.
  double rescaled_sq_diff = NAN;
};

// The cosine of two rows from their sums ab = Σ a·b, aa = Σ a², bb = Σ b²: 1 when both are zero,
// 0 when only one is.
inline double row_cosine(double ab, double aa, double bb) {
  return aa == 0 && bb == 0 ? 1.0 : (aa == 0 || bb == 0 ? 0.0 : ab / std::sqrt(aa * bb));
}

ActivationDiff diff_activations(const double* ref, const double* other, uint64_t rows, uint64_t width, bool rescale);

}  // namespace ckpt::model
