// The reductions validate --against takes of two device activations of one shape
// ([rows][width] float32, row-major), so that only a few numbers a row cross to the host instead
// of the activations (an 8B model's MLP outputs are 2048 x 14336 floats a Linear): each row's
// sums, accumulated in double, which the host combines into model::ActivationDiff
// (lib/model/activation_diff.h) as diff_activations computes it from host doubles.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ckpt::cuda {

// Plain (no initializers), as a __shared__ array of it must be.
struct RowDiff {
  double ab, aa, bb;  // Σ ref·other, Σ ref², Σ other²
  double dd;          // Σ (other − ref)²
  double dd_scaled;   // Σ (alpha_c · other − ref)² (alpha given), else 0
  double max_abs;     // the row's first largest |other − ref|; -1 when all are NaN
  uint64_t max_col;
};

// out[r] for each row r. `alpha` (device, [width], may be null): the per-column scales of dd_scaled.
cudaError_t row_diffs(const float* ref, const float* other, uint64_t rows, uint64_t width, const double* alpha,
                      RowDiff* out, cudaStream_t stream);
// alpha[c] = max(0, Σ_r ref·other / Σ_r other²) over column c (0 where other's column is all zero):
// the least-squares positive scale of other's column c towards ref's.
cudaError_t column_scales(const float* ref, const float* other, uint64_t rows, uint64_t width, double* alpha,
                          cudaStream_t stream);

}  // namespace ckpt::cuda
