#include "forward_kernels.h"

#include <cfloat>

#include "runtime/dependent_launch.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(uint64_t n) {
  uint64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535ull * 16 ? (blocks ? blocks : 1) : 65535ull * 16);
}

#define GRID_STRIDE(i, n) \
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < (n); i += uint64_t(gridDim.x) * blockDim.x)

// One block per row; the sum of squares in double so the result does not depend on the width.
// The kernels that precede a decode GEMV (rms_norm, attention, silu_mul) let it launch at once.
__global__ void rms_norm_kernel(const float* x, uint64_t width, const float* w, float eps, float* out) {
  allow_dependent_launch();
  __shared__ double partial[kThreads];
  const float* xr = x + blockIdx.x * width;
  double s = 0;
  for (uint64_t j = threadIdx.x; j < width; j += blockDim.x) s += double(xr[j]) * xr[j];
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float inv = static_cast<float>(1.0 / sqrt(partial[0] / double(width) + eps));
  __syncthreads();
  for (uint64_t j = threadIdx.x; j < width; j += blockDim.x) out[blockIdx.x * width + j] = w[j] * (xr[j] * inv);
}

__global__ void rope_kernel(float* x, uint64_t rows, uint64_t stride, uint64_t col, uint64_t heads, uint64_t head_dim,
                            uint64_t tokens, const uint64_t* start, const float* cos, const float* sin, uint64_t half) {
  GRID_STRIDE(i, rows * heads * half) {
    const uint64_t r = i / (heads * half), h = (i / half) % heads, d = i % half;
    const uint64_t pos = *start + r % tokens;
    float* head = x + r * stride + col + h * head_dim;
    const float c = cos[pos * half + d], s = sin[pos * half + d];
    const float x1 = head[d], x2 = head[d + half];
    head[d] = x1 * c - x2 * s;
    head[d + half] = x2 * c + x1 * s;
  }
}

__global__ void kv_write_kernel(AttentionArgs a) {
  GRID_STRIDE(i, a.batch * a.tokens * a.kv_heads * a.head_dim) {
    const uint64_t r = i / (a.kv_heads * a.head_dim), h = (i / a.head_dim) % a.kv_heads, d = i % a.head_dim;
    const uint64_t b = r / a.tokens, pos = *a.start + r % a.tokens;
    const uint64_t slot = ((b * a.capacity + pos) * a.kv_heads + h) * a.head_dim + d;
    a.k_cache[slot] = a.k_new[r * a.kv_stride + a.k_col + h * a.head_dim + d];
    a.v_cache[slot] = a.v_new[r * a.kv_stride + a.v_col + h * a.head_dim + d];
  }
}

// One block per (row, local query head): scores into shared memory in chunks, an online softmax.
__global__ void attention_kernel(AttentionArgs a) {
  allow_dependent_launch();
  const uint64_t r = blockIdx.x / a.q_heads, h = blockIdx.x % a.q_heads;
  const uint64_t b = r / a.tokens, pos = *a.start + r % a.tokens;
  const uint64_t first = a.window && pos + 1 > a.window ? pos + 1 - a.window : 0;
  const uint64_t kvh = (a.first_q_head + h) / a.group - a.first_kv_head;
  const float* q = a.q + r * a.q_stride + a.q_col + h * a.head_dim;
  __shared__ float scores[kThreads];
  __shared__ float red[kThreads];
  extern __shared__ float acc[];  // head_dim
  for (uint64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) acc[d] = 0;
  float running_max = -FLT_MAX, running_sum = 0;
  for (uint64_t j0 = first; j0 <= pos; j0 += blockDim.x) {
    const uint64_t j = j0 + threadIdx.x;
    float s = -FLT_MAX;
    if (j <= pos) {
      const float* k = a.k_cache + ((b * a.capacity + j) * a.kv_heads + kvh) * a.head_dim;
      float dot = 0;
      // Unrolled so that several loads are in flight (the sums keep their order).
#pragma unroll 8
      for (uint64_t d = 0; d < a.head_dim; ++d) dot += q[d] * k[d];
      s = dot * a.scale;
    }
    scores[threadIdx.x] = s;
    red[threadIdx.x] = s;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + stride]);
      __syncthreads();
    }
    const float new_max = fmaxf(running_max, red[0]);
    const float rescale = expf(running_max - new_max);
    __syncthreads();
    const float p = j <= pos ? expf(s - new_max) : 0.0f;
    scores[threadIdx.x] = p;
    red[threadIdx.x] = p;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) red[threadIdx.x] += red[threadIdx.x + stride];
      __syncthreads();
    }
    running_sum = running_sum * rescale + red[0];
    const uint64_t count = min(uint64_t(blockDim.x), pos + 1 - j0);
    for (uint64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
      float v_acc = acc[d] * rescale;
#pragma unroll 8
      for (uint64_t jj = 0; jj < count; ++jj)
        v_acc += scores[jj] * a.v_cache[((b * a.capacity + j0 + jj) * a.kv_heads + kvh) * a.head_dim + d];
      acc[d] = v_acc;
    }
    running_max = new_max;
    __syncthreads();
  }
  float* o = a.out + r * a.q_heads * a.head_dim + h * a.head_dim;
  for (uint64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) o[d] = acc[d] / running_sum;
}

__global__ void silu_mul_kernel(const float* gate, uint64_t gate_stride, uint64_t gate_col, const float* up,
                                uint64_t up_stride, uint64_t up_col, uint64_t rows, uint64_t n, float* out) {
  allow_dependent_launch();
  GRID_STRIDE(i, rows * n) {
    const uint64_t r = i / n, j = i % n;
    const float g = gate[r * gate_stride + gate_col + j];
    out[i] = g / (1.0f + expf(-g)) * up[r * up_stride + up_col + j];
  }
}

__global__ void add_bias_kernel(float* y, const float* b, uint64_t rows, uint64_t n) {
  GRID_STRIDE(i, rows * n) y[i] += b[i % n];
}

__global__ void add_kernel(float* y, const float* x, uint64_t n) {
  GRID_STRIDE(i, n) y[i] += x[i];
}

__global__ void copy_columns_kernel(const float* src, uint64_t src_stride, uint64_t src_col, float* dst,
                                    uint64_t dst_stride, uint64_t dst_col, uint64_t rows, uint64_t n) {
  GRID_STRIDE(i, rows * n) {
    const uint64_t r = i / n, j = i % n;
    dst[r * dst_stride + dst_col + j] = src[r * src_stride + src_col + j];
  }
}

__global__ void gather_kernel(const float* src, const int64_t* idx, uint64_t n, uint64_t w, float* dst) {
  GRID_STRIDE(i, n * w) dst[i] = src[idx[i / w] * w + i % w];
}

__global__ void scatter_kernel(const float* y, const int64_t* idx, const float* weight, uint64_t n, uint64_t w,
                               float* out) {
  GRID_STRIDE(i, n * w) out[idx[i / w] * w + i % w] += weight[i / w] * y[i];
}

__global__ void sigmoid_scale_kernel(float* y, const float* gate, uint64_t rows, uint64_t w) {
  GRID_STRIDE(i, rows * w) y[i] *= 1.0f / (1.0f + expf(-gate[i / w]));
}

}  // namespace

cudaError_t gather_rows(const float* src, const int64_t* idx, uint64_t n, uint64_t w, float* dst, cudaStream_t stream) {
  gather_kernel<<<grid_for(n * w), kThreads, 0, stream>>>(src, idx, n, w, dst);
  return cudaGetLastError();
}

cudaError_t scatter_add_weighted(const float* y, const int64_t* idx, const float* weight, uint64_t n, uint64_t w,
                                 float* out, cudaStream_t stream) {
  scatter_kernel<<<grid_for(n * w), kThreads, 0, stream>>>(y, idx, weight, n, w, out);
  return cudaGetLastError();
}

cudaError_t scale_rows_sigmoid(float* y, const float* gate, uint64_t rows, uint64_t w, cudaStream_t stream) {
  sigmoid_scale_kernel<<<grid_for(rows * w), kThreads, 0, stream>>>(y, gate, rows, w);
  return cudaGetLastError();
}

cudaError_t rms_norm_rows(const float* x, uint64_t rows, uint64_t width, const float* w, float eps, float* out,
                          cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, width, w, eps, out);
  return cudaGetLastError();
}

cudaError_t rope_rows(float* x, uint64_t rows, uint64_t stride, uint64_t col, uint64_t heads, uint64_t head_dim,
                      uint64_t tokens, const uint64_t* start, const float* cos, const float* sin, uint64_t half,
                      cudaStream_t stream) {
  rope_kernel<<<grid_for(rows * heads * half), kThreads, 0, stream>>>(x, rows, stride, col, heads, head_dim, tokens,
                                                                      start, cos, sin, half);
  return cudaGetLastError();
}

cudaError_t attention(const AttentionArgs& a, cudaStream_t stream) {
  kv_write_kernel<<<grid_for(a.batch * a.tokens * a.kv_heads * a.head_dim), kThreads, 0, stream>>>(a);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  const uint64_t blocks = a.batch * a.tokens * a.q_heads;
  if (blocks == 0) return cudaSuccess;
  attention_kernel<<<static_cast<unsigned>(blocks), kThreads, a.head_dim * sizeof(float), stream>>>(a);
  return cudaGetLastError();
}

cudaError_t silu_mul(const float* gate, uint64_t gate_stride, uint64_t gate_col, const float* up, uint64_t up_stride,
                     uint64_t up_col, uint64_t rows, uint64_t n, float* out, cudaStream_t stream) {
  silu_mul_kernel<<<grid_for(rows * n), kThreads, 0, stream>>>(gate, gate_stride, gate_col, up, up_stride, up_col, rows,
                                                              n, out);
  return cudaGetLastError();
}

cudaError_t add_bias(float* y, const float* b, uint64_t rows, uint64_t n, cudaStream_t stream) {
  add_bias_kernel<<<grid_for(rows * n), kThreads, 0, stream>>>(y, b, rows, n);
  return cudaGetLastError();
}

cudaError_t add_into(float* y, const float* x, uint64_t n, cudaStream_t stream) {
  add_kernel<<<grid_for(n), kThreads, 0, stream>>>(y, x, n);
  return cudaGetLastError();
}

cudaError_t copy_columns(const float* src, uint64_t src_stride, uint64_t src_col, float* dst, uint64_t dst_stride,
                         uint64_t dst_col, uint64_t rows, uint64_t n, cudaStream_t stream) {
  copy_columns_kernel<<<grid_for(rows * n), kThreads, 0, stream>>>(src, src_stride, src_col, dst, dst_stride, dst_col,
                                                                  rows, n);
  return cudaGetLastError();
}

}  // namespace ckpt::cuda
