#include "gptq_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "ops/float_convert.h"

namespace ckpt::test {

GptqReferenceResult gptq_reference(const std::vector<float>& w, uint64_t n, uint64_t k, uint64_t group,
                                   std::vector<double> h, double damp, bool act_order) {
  // Group scales from the original weights: F16(absmax / 7.5).
  const uint64_t groups = k / group;
  std::vector<float> scale(n * groups);
  for (uint64_t r = 0; r < n; ++r)
    for (uint64_t g = 0; g < groups; ++g) {
      float a = 0;
      for (uint64_t c = g * group; c < (g + 1) * group; ++c) a = std::max(a, std::fabs(w[r * k + c]));
      float s = ops::f16_to_f32(ops::f32_to_f16(a / 7.5f));
      scale[r * groups + g] = s == 0 ? 5.9604644775390625e-08f : s;
    }
  std::vector<double> W(w.begin(), w.end());
  for (uint64_t c = 0; c < k; ++c)
    if (h[c * k + c] == 0) {
      h[c * k + c] = 1;
      for (uint64_t r = 0; r < n; ++r) W[r * k + c] = 0;
    }
  double mean = 0;
  for (uint64_t c = 0; c < k; ++c) mean += h[c * k + c];
  mean /= static_cast<double>(k);
  for (uint64_t c = 0; c < k; ++c) h[c * k + c] += damp * mean;
  std::vector<uint64_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  if (act_order) std::stable_sort(order.begin(), order.end(), [&](uint64_t a, uint64_t b) { return h[a * k + a] > h[b * k + b]; });
  // Permuted H, inverted by Gauss-Jordan with partial pivoting.
  std::vector<double> a(k * 2 * k, 0.0);
  for (uint64_t i = 0; i < k; ++i) {
    for (uint64_t j = 0; j < k; ++j) a[i * 2 * k + j] = h[order[i] * k + order[j]];
    a[i * 2 * k + k + i] = 1;
  }
  for (uint64_t col = 0; col < k; ++col) {
    uint64_t piv = col;
    for (uint64_t r = col + 1; r < k; ++r)
      if (std::fabs(a[r * 2 * k + col]) > std::fabs(a[piv * 2 * k + col])) piv = r;
    for (uint64_t j = 0; j < 2 * k; ++j) std::swap(a[col * 2 * k + j], a[piv * 2 * k + j]);
    const double p = a[col * 2 * k + col];
    for (uint64_t j = 0; j < 2 * k; ++j) a[col * 2 * k + j] /= p;
    for (uint64_t r = 0; r < k; ++r) {
      if (r == col) continue;
      const double f = a[r * 2 * k + col];
      if (f != 0)
        for (uint64_t j = 0; j < 2 * k; ++j) a[r * 2 * k + j] -= f * a[col * 2 * k + j];
    }
  }
  auto hinv = [&](uint64_t i, uint64_t j) { return a[i * 2 * k + k + j]; };
  // Upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ U), row by row.
  std::vector<double> u(k * k, 0.0);
  for (uint64_t i = 0; i < k; ++i) {
    double d = hinv(i, i);
    for (uint64_t p = 0; p < i; ++p) d -= u[p * k + i] * u[p * k + i];
    if (!(d > 0)) throw std::runtime_error("gptq_reference: H⁻¹ is not positive definite");
    u[i * k + i] = std::sqrt(d);
    for (uint64_t j = i + 1; j < k; ++j) {
      double s = hinv(i, j);
      for (uint64_t p = 0; p < i; ++p) s -= u[p * k + i] * u[p * k + j];
      u[i * k + j] = s / u[i * k + i];
    }
  }
  GptqReferenceResult res;
  res.codes.assign(n * k, 0);
  for (uint64_t i = 0; i < k; ++i) {
    const uint64_t c = order[i];
    for (uint64_t r = 0; r < n; ++r) {
      const float s = scale[r * (k / group) + c / group];
      const double x = W[r * k + c];
      const float v = std::rint(static_cast<float>(x) / s) + 8.0f;
      const int q = v < 0 ? 0 : v > 15 ? 15 : static_cast<int>(v);
      res.codes[r * k + c] = static_cast<uint8_t>(q);
      const double deq = static_cast<double>(static_cast<float>(q - 8) * s);
      res.loss += (x - deq) * (x - deq) / (u[i * k + i] * u[i * k + i]) / 2;
      const double e = (x - deq) / u[i * k + i];
      for (uint64_t j = i + 1; j < k; ++j) W[r * k + order[j]] -= e * u[i * k + j];
    }
  }
  return res;
}

}  // namespace ckpt::test
