#include "model/activation_diff.h"

#include <algorithm>
#include <vector>

namespace ckpt::model {

ActivationDiff diff_activations(const double* ref, const double* other, uint64_t rows, uint64_t width, bool rescale) {
  ActivationDiff d;
  const uint64_t n = rows * width;
  for (uint64_t r = 0; r < rows; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (uint64_t j = r * width; j < (r + 1) * width; ++j) {
      const double x = ref[j], y = other[j], e = y - x;
      ab += x * y;
      aa += x * x;
      bb += y * y;
      d.sum_sq_ref += x * x;  // in element order, as the sums were always taken
      d.sum_sq_diff += e * e;
      if (std::fabs(e) > d.max_abs_diff) d.max_abs_diff = std::fabs(e), d.max_at = j;
    }
    d.min_row_cosine = std::min(d.min_row_cosine, row_cosine(ab, aa, bb));
  }
  if (rescale && width > 0) {
    std::vector<double> ro(width, 0.0), oo(width, 0.0);
    for (uint64_t j = 0; j < n; ++j) ro[j % width] += ref[j] * other[j], oo[j % width] += other[j] * other[j];
    double num = 0;
    for (uint64_t j = 0; j < n; ++j) {
      const uint64_t c = j % width;
      const double alpha = oo[c] > 0 ? std::max(0.0, ro[c] / oo[c]) : 0.0;
      const double e = alpha * other[j] - ref[j];
      num += e * e;
    }
    d.rescaled_sq_diff = num;
  }
  return d;
}

}  // namespace ckpt::model
