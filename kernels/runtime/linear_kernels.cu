#include "runtime/linear_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "ops/int4_math.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;  // linear_skinny: one output row per warp

unsigned grid_for(uint64_t n) {
  const uint64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535ull * 16 ? (blocks ? blocks : 1) : 65535ull * 16);
}

// The FP8 scale of element (n, k); 1 for a weight without one.
__device__ __forceinline__ float fp8_scale(const LinearView& w, uint64_t n, uint64_t k) {
  switch (w.scale_kind) {
    case ScaleKind::kNone: return 1.0f;
    case ScaleKind::kTensor: return w.scale[0];
    case ScaleKind::kChannel: return w.scale[n];
    case ScaleKind::kBlock: return w.scale[(n / w.block_n) * ((w.k + w.block_k - 1) / w.block_k) + k / w.block_k];
  }
  return 1.0f;
}

// W[n][k] dequantized: the one element-wise definition every kernel here follows. An FP8 code
// times its float32 scale, rounded once, equals the reference's double product rounded to float32
// (the exact product has at most 28 significant bits).
__device__ __forceinline__ float weight_at(const LinearView& w, uint64_t n, uint64_t k) {
  const uint8_t* row = static_cast<const uint8_t*>(w.w) + n * w.row_bytes;
  switch (w.elem) {
    case WeightElem::kF32: return reinterpret_cast<const float*>(row)[k];
    case WeightElem::kF16: return ops::f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    case WeightElem::kBF16: return ops::bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    case WeightElem::kE4M3: return ops::e4m3fn_to_f32(row[k]) * fp8_scale(w, n, k);
    case WeightElem::kInt4: {
      const uint64_t g = n * w.groups + (w.g_idx ? static_cast<uint64_t>(w.g_idx[k]) : k / w.group);
      const uint32_t q = (reinterpret_cast<const uint32_t*>(row)[k / 8] >> (4 * (k % 8))) & 15u;
      return ops::int4_dequant(q, w.group_zero[g], w.group_scale[g]);
    }
  }
  return 0.0f;
}

// Elements per 16-byte load.
template <WeightElem E>
constexpr int kPerLoad = E == WeightElem::kF32 ? 4 : E == WeightElem::kE4M3 ? 16 : E == WeightElem::kInt4 ? 32 : 8;

// The kPerLoad<E> elements of row n from column k0 held in `raw`, dequantized as weight_at does.
// Their FP8 block / INT4 group is one (skinny_vectorized checks the widths).
template <WeightElem E>
__device__ __forceinline__ void decode_load(const LinearView& w, uint64_t n, uint64_t k0, const uint4& raw, float* v) {
  const uint32_t u[4] = {raw.x, raw.y, raw.z, raw.w};
  if constexpr (E == WeightElem::kF32) {
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = __uint_as_float(u[i]);
  } else if constexpr (E == WeightElem::kBF16) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(u[i] << 16);
      v[2 * i + 1] = __uint_as_float(u[i] & 0xFFFF0000u);
    }
  } else if constexpr (E == WeightElem::kF16) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&u[i]));
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  } else if constexpr (E == WeightElem::kE4M3) {
    // E4M3 -> f16 is exact (every E4M3 value, subnormals included, is an f16; NaN stays NaN).
    const float s = fp8_scale(w, n, k0);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const __nv_fp8x2_storage_t pair = static_cast<__nv_fp8x2_storage_t>((u[i / 2] >> (16 * (i % 2))) & 0xFFFFu);
      const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3);
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&h));
      v[2 * i] = f.x * s;
      v[2 * i + 1] = f.y * s;
    }
  } else {
    const uint64_t g = n * w.groups + k0 / w.group;
    const float s = w.group_scale[g];
    const uint32_t z = w.group_zero[g];
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = ops::int4_dequant((u[i / 8] >> (4 * (i % 8))) & 15u, z, s);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

// y = dot + bias, or y += dot + bias (accumulate: the residual add of o_proj / down_proj).
template <int MAXM>
__device__ __forceinline__ void write_rows(const float (&acc)[MAXM], int m, uint64_t n, uint64_t N, float* y,
                                           const float* bias, bool accumulate) {
  const float b = bias ? bias[n] : 0.0f;  // one warp: every lane reads it, lane 0 writes
#pragma unroll
  for (int r = 0; r < MAXM; ++r) {
    const float s = warp_sum(acc[r]) + b;
    if (r < m && threadIdx.x % 32 == 0) y[r * N + n] = accumulate ? y[r * N + n] + s : s;
  }
}

// The Linears of one launch (kernel parameter): job j owns blocks [first_block[j], first_block[j + 1]).
struct SkinnyJobs {
  SkinnyJob job[kSkinnyMaxJobs];
  unsigned first_block[kSkinnyMaxJobs + 1];
  int count;
  bool accumulate;
};

// This block's job (copied by constant index: a kernel parameter indexed at run time would be
// copied to local memory) and output row (one warp per row); false past the job's last row.
__device__ __forceinline__ bool block_job(const SkinnyJobs& jobs, SkinnyJob* job, uint64_t* n) {
  static_assert(kSkinnyMaxJobs == 3, "block_job selects among three jobs");
  const unsigned b = blockIdx.x;
  const int i = jobs.count > 2 && b >= jobs.first_block[2] ? 2 : jobs.count > 1 && b >= jobs.first_block[1] ? 1 : 0;
  *job = i == 0 ? jobs.job[0] : i == 1 ? jobs.job[1] : jobs.job[2];
  *n = (b - (i == 0 ? 0u : i == 1 ? jobs.first_block[1] : jobs.first_block[2])) * uint64_t(kWarps) + threadIdx.x / 32;
  return *n < job->w.n;
}

// One warp per row n: lane l takes loads l, l + 32, ...; MAXM accumulators, rows past m unused.
// Loads in flight per lane: enough to cover HBM latency, fewer where a load decodes to many registers.
template <WeightElem E>
constexpr int kUnroll = E == WeightElem::kInt4 || E == WeightElem::kE4M3 ? 2 : 4;

template <WeightElem E, int MAXM>
__global__ void __launch_bounds__(kThreads) skinny_kernel(SkinnyJobs jobs, const float* __restrict__ x, int m) {
  SkinnyJob job;
  uint64_t n;
  if (!block_job(jobs, &job, &n)) return;
  const LinearView& w = job.w;
  constexpr int P = kPerLoad<E>;
  const uint4* row = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.w) + n * w.row_bytes);
  const uint64_t loads = w.k / P;
  float acc[MAXM];
#pragma unroll
  for (int r = 0; r < MAXM; ++r) acc[r] = 0.0f;
#pragma unroll kUnroll<E>
  for (uint64_t c = threadIdx.x % 32; c < loads; c += 32) {
    float v[P];
    decode_load<E>(w, n, c * P, __ldg(row + c), v);
#pragma unroll
    for (int r = 0; r < MAXM; ++r) {
      if (r < m) {
        const float4* xr = reinterpret_cast<const float4*>(x + r * w.k + c * P);
#pragma unroll
        for (int q = 0; q < P / 4; ++q) {
          const float4 a = __ldg(xr + q);
          acc[r] = fmaf(v[4 * q], a.x, acc[r]);
          acc[r] = fmaf(v[4 * q + 1], a.y, acc[r]);
          acc[r] = fmaf(v[4 * q + 2], a.z, acc[r]);
          acc[r] = fmaf(v[4 * q + 3], a.w, acc[r]);
        }
      }
    }
  }
  write_rows<MAXM>(acc, m, n, w.n, job.y, job.bias, jobs.accumulate);
}

// Any layout, element by element (weight_at).
__global__ void __launch_bounds__(kThreads) skinny_elementwise_kernel(SkinnyJobs jobs, const float* __restrict__ x,
                                                                      int m) {
  SkinnyJob job;
  uint64_t n;
  if (!block_job(jobs, &job, &n)) return;
  const LinearView& w = job.w;
  constexpr int MAXM = static_cast<int>(kSkinnyMaxRows);
  float acc[MAXM];
#pragma unroll
  for (int r = 0; r < MAXM; ++r) acc[r] = 0.0f;
  for (uint64_t k = threadIdx.x % 32; k < w.k; k += 32) {
    const float v = weight_at(w, n, k);
#pragma unroll
    for (int r = 0; r < MAXM; ++r)
      if (r < m) acc[r] = fmaf(v, x[r * w.k + k], acc[r]);
  }
  write_rows<MAXM>(acc, m, n, w.n, job.y, job.bias, jobs.accumulate);
}

__global__ void dequantize_kernel(LinearView w, float* out) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < w.n * w.k; i += uint64_t(gridDim.x) * blockDim.x)
    out[i] = weight_at(w, i / w.k, i % w.k);
}

__global__ void embed_kernel(LinearView table, uint64_t row_begin, uint64_t rows, const int64_t* ids, uint64_t n,
                             float* out) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n * table.k;
       i += uint64_t(gridDim.x) * blockDim.x) {
    const uint64_t t = i / table.k, j = i % table.k;
    const int64_t id = ids[t];
    if (id >= static_cast<int64_t>(row_begin) && id < static_cast<int64_t>(row_begin + rows))
      out[i] += weight_at(table, static_cast<uint64_t>(id) - row_begin, j);
  }
}

template <WeightElem E>
cudaError_t launch_skinny(const SkinnyJobs& jobs, const float* x, int m, cudaStream_t s) {
  const unsigned blocks = jobs.first_block[jobs.count];
  if (m == 1) skinny_kernel<E, 1><<<blocks, kThreads, 0, s>>>(jobs, x, m);
  else if (m == 2) skinny_kernel<E, 2><<<blocks, kThreads, 0, s>>>(jobs, x, m);
  else if (m <= 4) skinny_kernel<E, 4><<<blocks, kThreads, 0, s>>>(jobs, x, m);
  else skinny_kernel<E, 8><<<blocks, kThreads, 0, s>>>(jobs, x, m);
  return cudaGetLastError();
}

uint64_t per_load(WeightElem e) {
  switch (e) {
    case WeightElem::kF32: return 4;
    case WeightElem::kF16:
    case WeightElem::kBF16: return 8;
    case WeightElem::kE4M3: return 16;
    case WeightElem::kInt4: return 32;
  }
  return 1;
}

}  // namespace

bool skinny_vectorized(const LinearView& w, const float* x) {
  const uint64_t p = per_load(w.elem);
  if (w.k % p != 0 || w.row_bytes % 16 != 0 || reinterpret_cast<uintptr_t>(w.w) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(x) % 16 != 0)
    return false;
  if (w.elem == WeightElem::kE4M3 && w.scale_kind == ScaleKind::kBlock && w.block_k % p != 0) return false;
  if (w.elem == WeightElem::kInt4 && (w.g_idx != nullptr || w.group % p != 0)) return false;
  return true;
}

cudaError_t linear_skinny_jobs(const SkinnyJob* job, int count, const float* x, uint64_t m, bool accumulate,
                               cudaStream_t stream, bool element_wise) {
  if (count < 1 || count > kSkinnyMaxJobs || m > kSkinnyMaxRows) return cudaErrorInvalidValue;
  SkinnyJobs jobs{};
  jobs.count = count;
  jobs.accumulate = accumulate;
  bool vectorized = !element_wise;
  for (int j = 0; j < count; ++j) {
    jobs.job[j] = job[j];
    jobs.first_block[j + 1] = jobs.first_block[j] + static_cast<unsigned>((job[j].w.n + kWarps - 1) / kWarps);
    vectorized = vectorized && job[j].w.elem == job[0].w.elem && skinny_vectorized(job[j].w, x);
  }
  if (m == 0 || jobs.first_block[count] == 0) return cudaSuccess;
  const int rows = static_cast<int>(m);
  if (!vectorized) {
    skinny_elementwise_kernel<<<jobs.first_block[count], kThreads, 0, stream>>>(jobs, x, rows);
    return cudaGetLastError();
  }
  switch (job[0].w.elem) {
    case WeightElem::kF32: return launch_skinny<WeightElem::kF32>(jobs, x, rows, stream);
    case WeightElem::kF16: return launch_skinny<WeightElem::kF16>(jobs, x, rows, stream);
    case WeightElem::kBF16: return launch_skinny<WeightElem::kBF16>(jobs, x, rows, stream);
    case WeightElem::kE4M3: return launch_skinny<WeightElem::kE4M3>(jobs, x, rows, stream);
    case WeightElem::kInt4: return launch_skinny<WeightElem::kInt4>(jobs, x, rows, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t linear_skinny(const LinearView& w, const float* x, uint64_t m, float* y, const float* bias,
                          bool accumulate, cudaStream_t stream, bool element_wise) {
  const SkinnyJob job{w, y, bias};
  return linear_skinny_jobs(&job, 1, x, m, accumulate, stream, element_wise);
}

cudaError_t dequantize_linear(const LinearView& w, float* out, cudaStream_t stream) {
  if (w.n * w.k == 0) return cudaSuccess;
  dequantize_kernel<<<grid_for(w.n * w.k), kThreads, 0, stream>>>(w, out);
  return cudaGetLastError();
}

__global__ void f32_to_half_kernel(const float* x, uint64_t count, int type16, void* out) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count; i += uint64_t(gridDim.x) * blockDim.x) {
    if (type16 == 0) static_cast<__half*>(out)[i] = __float2half_rn(x[i]);
    else static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(x[i]);
  }
}

__global__ void half_to_f32_add_kernel(const void* c, int type16, uint64_t rows, uint64_t n, const float* bias,
                                       bool accumulate, float* y) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < rows * n; i += uint64_t(gridDim.x) * blockDim.x) {
    float v = type16 == 0 ? __half2float(static_cast<const __half*>(c)[i])
                        : __bfloat162float(static_cast<const __nv_bfloat16*>(c)[i]);
    if (bias) v += bias[i % n];
    y[i] = accumulate ? y[i] + v : v;
  }
}

cudaError_t f32_to_half(const float* x, uint64_t count, int type16, void* out, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  f32_to_half_kernel<<<grid_for(count), kThreads, 0, stream>>>(x, count, type16, out);
  return cudaGetLastError();
}

cudaError_t half_to_f32_add(const void* c, int type16, uint64_t rows, uint64_t n, const float* bias, bool accumulate,
                            float* y, cudaStream_t stream) {
  if (rows * n == 0) return cudaSuccess;
  half_to_f32_add_kernel<<<grid_for(rows * n), kThreads, 0, stream>>>(c, type16, rows, n, bias, accumulate, y);
  return cudaGetLastError();
}

cudaError_t embed_rows(const LinearView& table, uint64_t row_begin, uint64_t rows, const int64_t* ids, uint64_t n,
                       float* out, cudaStream_t stream) {
  if (n * table.k == 0) return cudaSuccess;
  embed_kernel<<<grid_for(n * table.k), kThreads, 0, stream>>>(table, row_begin, std::min(rows, table.n), ids, n, out);
  return cudaGetLastError();
}

}  // namespace ckpt::cuda
