#include "runtime/compare_kernels.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;

// Whether (v, c) ranks before (best, best_c): larger, or as large and earlier. NaN never ranks.
__device__ bool better(double v, uint64_t c, double best, uint64_t best_c) {
  return v > best || (v == best && v >= 0 && c < best_c);
}

__global__ void row_diffs_kernel(const float* ref, const float* other, uint64_t width, const double* alpha,
                                 RowDiff* out) {
  const uint64_t row = blockIdx.x;
  const float* a = ref + row * width;
  const float* b = other + row * width;
  RowDiff s{0, 0, 0, 0, 0, -1, width};
  for (uint64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const double x = a[j], y = b[j], e = y - x;
    s.ab += x * y;
    s.aa += x * x;
    s.bb += y * y;
    s.dd += e * e;
    if (alpha) {
      const double f = alpha[j] * y - x;
      s.dd_scaled += f * f;
    }
    if (better(fabs(e), j, s.max_abs, s.max_col)) s.max_abs = fabs(e), s.max_col = j;
  }
  __shared__ RowDiff part[kThreads];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      RowDiff& p = part[threadIdx.x];
      const RowDiff& q = part[threadIdx.x + half];
      p.ab += q.ab;
      p.aa += q.aa;
      p.bb += q.bb;
      p.dd += q.dd;
      p.dd_scaled += q.dd_scaled;
      if (better(q.max_abs, q.max_col, p.max_abs, p.max_col)) p.max_abs = q.max_abs, p.max_col = q.max_col;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    RowDiff r = part[0];
    if (r.max_abs < 0) r.max_col = 0;
    out[row] = r;
  }
}

// One thread a column: neighbouring threads read neighbouring floats of each row.
__global__ void column_scales_kernel(const float* ref, const float* other, uint64_t rows, uint64_t width, double* alpha) {
  const uint64_t c = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (c >= width) return;
  double ro = 0, oo = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    const double x = ref[r * width + c], y = other[r * width + c];
    ro += x * y;
    oo += y * y;
  }
  alpha[c] = oo > 0 ? fmax(0.0, ro / oo) : 0.0;
}

}  // namespace

cudaError_t row_diffs(const float* ref, const float* other, uint64_t rows, uint64_t width, const double* alpha,
                      RowDiff* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (rows > 0x7fffffffu) return cudaErrorInvalidValue;
  row_diffs_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(ref, other, width, alpha, out);
  return cudaGetLastError();
}

cudaError_t column_scales(const float* ref, const float* other, uint64_t rows, uint64_t width, double* alpha,
                          cudaStream_t stream) {
  if (width == 0) return cudaSuccess;
  const uint64_t blocks = (width + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffffu) return cudaErrorInvalidValue;
  column_scales_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(ref, other, rows, width, alpha);
  return cudaGetLastError();
}

}  // namespace ckpt::cuda
