// An independent, deliberately plain GPTQ (Frantar et al. 2022, Algorithm 1 without the lazy
// batching), written from the paper and IST-DASLab/gptq gptq.py for the tests: the inverse by
// Gauss-Jordan elimination, its upper Cholesky factor by the textbook recurrence, and every
// column's error applied to ALL later columns at once (no 128-column blocks). Symmetric INT4 with
// F16 scales from the original weights (absmax / 7.5, zero 8), columns swept in decreasing
// diag(H) order (stable) when act_order. float64 throughout.
#pragma once

#include <cstdint>
#include <vector>

namespace ckpt::test {

struct GptqReferenceResult {
  std::vector<uint8_t> codes;  // [n, k]
  double loss = 0;             // Σ (w − q)² / U[c, c]² / 2
};

GptqReferenceResult gptq_reference(const std::vector<float>& w, uint64_t n, uint64_t k, uint64_t group,
                                   std::vector<double> h, double damp, bool act_order);

}  // namespace ckpt::test
