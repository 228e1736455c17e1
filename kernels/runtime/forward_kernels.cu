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

// The kernels of a decode step are programmatic dependents (runtime/dependent_launch.h): each
// lets the next launch at its start, then waits for the one before it.

// One block of kNormThreads per row; the sum of squares in double so the result does not depend on
// the width. A decode step normalises one row, so this block's latency is the kernel's: each
// thread holds its few elements in registers between the sum and the scaling (one read of the
// row), and the sum is a warp butterfly then the warps' partials in index order (one barrier
// instead of a shared-memory tree's eight).
constexpr int kNormThreads = 1024;
constexpr int kNormPerThread = 8;  // rows up to 8192 wide stay in registers; wider ones are re-read

__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(const float* x, uint64_t width, const float* w, float eps, float* out) {
  allow_dependent_launch();
  wait_for_previous_kernel();
  __shared__ double warp_partial[kNormThreads / 32];
  const float* xr = x + blockIdx.x * width;
  const unsigned t = threadIdx.x;
  float v[kNormPerThread];
  double s = 0;
#pragma unroll
  for (int i = 0; i < kNormPerThread; ++i) {
    const uint64_t j = t + uint64_t(i) * kNormThreads;
    v[i] = j < width ? xr[j] : 0.0f;
    s += double(v[i]) * v[i];
  }
  for (uint64_t j = t + uint64_t(kNormPerThread) * kNormThreads; j < width; j += kNormThreads) s += double(xr[j]) * xr[j];
#pragma unroll
  for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
  if (t % 32 == 0) warp_partial[t / 32] = s;
  __syncthreads();
  double total = 0;
#pragma unroll
  for (int i = 0; i < kNormThreads / 32; ++i) total += warp_partial[i];
  const float inv = static_cast<float>(1.0 / sqrt(total / double(width) + eps));
  float* o = out + blockIdx.x * width;
#pragma unroll
  for (int i = 0; i < kNormPerThread; ++i) {
    const uint64_t j = t + uint64_t(i) * kNormThreads;
    if (j < width) o[j] = w[j] * (v[i] * inv);
  }
  for (uint64_t j = t + uint64_t(kNormPerThread) * kNormThreads; j < width; j += kNormThreads) o[j] = w[j] * (xr[j] * inv);
}

// Element d of a head at position pos after the rotary embedding: pairs (d, d + half) for d <
// half rotate by the table's angle, dimensions from 2 * half on (partial rotary) stay.
__device__ __forceinline__ float rotated(const float* head, uint64_t d, uint64_t pos, const AttentionArgs& a) {
  if (d >= 2 * a.half) return head[d];
  const uint64_t i = d < a.half ? d : d - a.half;
  const float c = a.cos[pos * a.half + i], s = a.sin[pos * a.half + i];
  return d < a.half ? head[d] * c - head[d + a.half] * s : head[d] * c + head[i] * s;
}

__global__ void kv_write_kernel(AttentionArgs a) {
  allow_dependent_launch();
  wait_for_previous_kernel();
  GRID_STRIDE(i, a.batch * a.tokens * a.kv_heads * a.head_dim) {
    const uint64_t r = i / (a.kv_heads * a.head_dim), h = (i / a.head_dim) % a.kv_heads, d = i % a.head_dim;
    const uint64_t b = r / a.tokens, pos = *a.start + r % a.tokens;
    const uint64_t slot = ((b * a.capacity + pos) * a.kv_heads + h) * a.head_dim + d;
    a.k_cache[slot] = rotated(a.k_new + r * a.kv_stride + a.k_col + h * a.head_dim, d, pos, a);
    a.v_cache[slot] = a.v_new[r * a.kv_stride + a.v_col + h * a.head_dim + d];
  }
}

// Attention: one block of kAttnThreads per (row, local query head), over the positions in chunks
// of kAttnThreads with an online softmax. A decode step has one block per head (32 for an 8B
// model), so each block's latency is the kernel's: the work is spread so that a warp always has
// several independent loads in flight, and every load is coalesced.
//  - scores: warp w takes positions w*4 .. w*4+3, then the next kAttnWarps*4, its lanes split the
//    head's dimensions (128 contiguous bytes of a key row per load), 4 positions' loads at once;
//    a butterfly sum per position.
//  - softmax: max and sum over the chunk by warp shuffles and one value per warp in shared
//    memory, summed in warp order.
//  - values: warp w accumulates positions w, w + kAttnWarps, ... into its own row of partial
//    outputs (shared memory, one lane per dimension, 8 dimensions a lane at a time, a value row's
//    128 contiguous bytes per load); the rows are summed in warp order at the end.
// Every sum has a fixed order: the result does not depend on timing (graph replay equals eager).
constexpr int kAttnThreads = 512;
constexpr int kAttnWarps = kAttnThreads / 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

__global__ void __launch_bounds__(kAttnThreads) attention_kernel(AttentionArgs a) {
  allow_dependent_launch();
  wait_for_previous_kernel();
  const uint64_t r = blockIdx.x / a.q_heads, h = blockIdx.x % a.q_heads;
  const uint64_t b = r / a.tokens, pos = *a.start + r % a.tokens;
  const uint64_t first = a.window && pos + 1 > a.window ? pos + 1 - a.window : 0;
  const uint64_t kvh = (a.first_q_head + h) / a.group - a.first_kv_head;
  const uint64_t hd = a.head_dim, row_stride = a.kv_heads * hd;
  const unsigned t = threadIdx.x, lane = t % 32, warp = t / 32;
  __shared__ float scores[kAttnThreads];
  __shared__ float warp_maxes[kAttnWarps], warp_sums[kAttnWarps];
  extern __shared__ float smem[];
  float* qs = smem;                 // [hd]: the query head
  float* partial = smem + hd;       // [kAttnWarps][hd]: each warp's share of the output
  const float* q = a.q + r * a.q_stride + a.q_col + h * hd;
  for (uint64_t d = t; d < hd; d += kAttnThreads) qs[d] = rotated(q, d, pos, a);
  for (uint64_t d = t; d < kAttnWarps * hd; d += kAttnThreads) partial[d] = 0.0f;
  __syncthreads();
  // Key / value row of position j of this sequence and KV head.
  const float* k_head = a.k_cache + (b * a.capacity * a.kv_heads + kvh) * hd;
  const float* v_head = a.v_cache + (b * a.capacity * a.kv_heads + kvh) * hd;
  float running_max = -FLT_MAX, running_sum = 0;
  for (uint64_t j0 = first; j0 <= pos; j0 += kAttnThreads) {
    const unsigned count = static_cast<unsigned>(min(uint64_t(kAttnThreads), pos + 1 - j0));
    for (unsigned p0 = warp * 4; p0 < count; p0 += kAttnWarps * 4) {
      float dot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (uint64_t d = lane; d < hd; d += 32) {
        const float qd = qs[d];
#pragma unroll
        for (int u = 0; u < 4; ++u)
          if (p0 + u < count) dot[u] = fmaf(qd, k_head[(j0 + p0 + u) * row_stride + d], dot[u]);
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float s = warp_sum(dot[u]);
        if (lane == 0 && p0 + u < count) scores[p0 + u] = s * a.scale;
      }
    }
    __syncthreads();
    const float s = t < count ? scores[t] : -FLT_MAX;
    const float m = warp_max(s);
    if (lane == 0) warp_maxes[warp] = m;
    __syncthreads();
    float chunk_max = warp_maxes[0];
    for (int w = 1; w < kAttnWarps; ++w) chunk_max = fmaxf(chunk_max, warp_maxes[w]);
    const float new_max = fmaxf(running_max, chunk_max);
    const float rescale = expf(running_max - new_max);
    const float p = t < count ? expf(s - new_max) : 0.0f;
    scores[t] = p;
    const float ps = warp_sum(p);
    if (lane == 0) warp_sums[warp] = ps;
    __syncthreads();  // scores (probabilities) and warp_sums complete
    float chunk_sum = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) chunk_sum += warp_sums[w];
    running_sum = running_sum * rescale + chunk_sum;
    for (uint64_t d0 = 0; d0 < hd; d0 += 8 * 32) {
      float acc[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint64_t d = d0 + lane + 32 * i;
        acc[i] = d < hd ? partial[warp * hd + d] * rescale : 0.0f;
      }
#pragma unroll 2
      for (unsigned jj = warp; jj < count; jj += kAttnWarps) {
        const float pj = scores[jj];
        const float* v = v_head + (j0 + jj) * row_stride;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const uint64_t d = d0 + lane + 32 * i;
          if (d < hd) acc[i] = fmaf(pj, v[d], acc[i]);
        }
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint64_t d = d0 + lane + 32 * i;
        if (d < hd) partial[warp * hd + d] = acc[i];
      }
    }
    running_max = new_max;
    __syncthreads();  // before the next chunk overwrites scores and the warp values
  }
  float* o = a.out + r * a.q_heads * hd + h * hd;
  for (uint64_t d = t; d < hd; d += kAttnThreads) {
    float sum = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) sum += partial[w * hd + d];
    o[d] = sum / running_sum;
  }
}

__global__ void silu_mul_kernel(const float* gate, uint64_t gate_stride, uint64_t gate_col, const float* up,
                                uint64_t up_stride, uint64_t up_col, uint64_t rows, uint64_t n, float* out) {
  allow_dependent_launch();
  wait_for_previous_kernel();
  GRID_STRIDE(i, rows * n) {
    const uint64_t r = i / n, j = i % n;
    const float g = gate[r * gate_stride + gate_col + j];
    out[i] = g / (1.0f + expf(-g)) * up[r * up_stride + up_col + j];
  }
}

__global__ void add_bias_kernel(float* y, const float* b, uint64_t rows, uint64_t n) {
  allow_dependent_launch();
  wait_for_previous_kernel();
  GRID_STRIDE(i, rows * n) y[i] += b[i % n];
}

__global__ void add_kernel(float* y, const float* x, uint64_t n) {
  allow_dependent_launch();
  wait_for_previous_kernel();
  GRID_STRIDE(i, n) y[i] += x[i];
}

__global__ void copy_columns_kernel(const float* src, uint64_t src_stride, uint64_t src_col, float* dst,
                                    uint64_t dst_stride, uint64_t dst_col, uint64_t rows, uint64_t n) {
  allow_dependent_launch();
  wait_for_previous_kernel();
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
  return launch_dependent(rms_norm_kernel, static_cast<unsigned>(rows), kNormThreads, 0, stream, x, width, w, eps, out);
}

cudaError_t attention(const AttentionArgs& a, cudaStream_t stream) {
  if (cudaError_t e = launch_dependent(kv_write_kernel, grid_for(a.batch * a.tokens * a.kv_heads * a.head_dim), kThreads, 0,
                                      stream, a);
      e != cudaSuccess)
    return e;
  const uint64_t blocks = a.batch * a.tokens * a.q_heads;
  if (blocks == 0) return cudaSuccess;
  const size_t smem = (kAttnWarps + 1) * a.head_dim * sizeof(float);
  if (smem > 48 * 1024) {  // head_dim > 722: opt in to the larger shared memory
    if (cudaError_t e = cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem));
        e != cudaSuccess)
      return e;
  }
  return launch_dependent(attention_kernel, static_cast<unsigned>(blocks), kAttnThreads, smem, stream, a);
}

cudaError_t silu_mul(const float* gate, uint64_t gate_stride, uint64_t gate_col, const float* up, uint64_t up_stride,
                     uint64_t up_col, uint64_t rows, uint64_t n, float* out, cudaStream_t stream) {
  return launch_dependent(silu_mul_kernel, grid_for(rows * n), kThreads, 0, stream, gate, gate_stride, gate_col, up,
                          up_stride, up_col, rows, n, out);
}

cudaError_t add_bias(float* y, const float* b, uint64_t rows, uint64_t n, cudaStream_t stream) {
  return launch_dependent(add_bias_kernel, grid_for(rows * n), kThreads, 0, stream, y, b, rows, n);
}

cudaError_t add_into(float* y, const float* x, uint64_t n, cudaStream_t stream) {
  return launch_dependent(add_kernel, grid_for(n), kThreads, 0, stream, y, x, n);
}

cudaError_t copy_columns(const float* src, uint64_t src_stride, uint64_t src_col, float* dst, uint64_t dst_stride,
                         uint64_t dst_col, uint64_t rows, uint64_t n, cudaStream_t stream) {
  return launch_dependent(copy_columns_kernel, grid_for(rows * n), kThreads, 0, stream, src, src_stride, src_col, dst,
                          dst_stride, dst_col, rows, n);
}

}  // namespace ckpt::cuda
