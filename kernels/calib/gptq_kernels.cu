// Kernels of the GPTQ solve (kernels/calib/gptq_kernels.h). The per-element math is
// ops/int4_math.h, the very functions the CPU reference (lib/calib/gptq.cpp) quantizes with.
#include "calib/gptq_kernels.h"

#include <algorithm>

#include "int4_quant.h"  // persistent_grid
#include "ops/int4_math.h"

namespace ckpt::cuda::gptq {

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

unsigned blocks_for(uint64_t items, uint64_t per_block) {
  return static_cast<unsigned>(std::min<uint64_t>((items + per_block - 1) / per_block, 1u << 20));
}

__global__ void params_kernel(ParamsArgs a) {
  const uint64_t warp = (static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const uint64_t total = a.n * a.groups;
  for (uint64_t grp = warp; grp < total; grp += static_cast<uint64_t>(gridDim.x) * (blockDim.x / 32)) {
    const uint64_t r = grp / a.groups, g = grp % a.groups;
    const float* x = a.w + r * a.k + g * a.group;
    // The reference's comparisons (std::max / std::min), so signed zeros come out the same.
    float amax = 0.0f, lo = 0.0f, hi = 0.0f;
    bool bad = false;
    for (uint64_t c = lane; c < a.group; c += 32) {
      const float v = x[c];
      if (!isfinite(v)) {
        bad = true;
        continue;
      }
      const float av = fabsf(v);
      amax = amax < av ? av : amax;
      lo = v < lo ? v : lo;
      hi = hi < v ? v : hi;
    }
    for (int o = 16; o > 0; o /= 2) {
      const float am = __shfl_xor_sync(kFull, amax, o), l = __shfl_xor_sync(kFull, lo, o),
                  h = __shfl_xor_sync(kFull, hi, o);
      amax = amax < am ? am : amax;
      lo = l < lo ? l : lo;
      hi = hi < h ? h : hi;
    }
    bad = __any_sync(kFull, bad);
    if (lane != 0) continue;
    if (bad) {
      atomicOr(a.flags, 1u);
      continue;
    }
    // ops/int4_quant_detail.h int4_group_params.
    float scale;
    uint32_t zero;
    if (a.symmetric ? amax == 0.0f : hi == lo) {
      scale = ops::int4_zero_group_scale(a.format, a.scale_type);
      zero = ops::int4_zero_group_zero(a.format, a.symmetric);
    } else {
      scale = a.symmetric ? ops::int4_sym_scale(amax, a.scale_type) : ops::int4_asym_scale(lo, hi, a.scale_type);
      if (!(scale < 3.4e38f)) {
        atomicOr(a.flags, 2u);
        continue;
      }
      zero = a.symmetric ? 8u : ops::int4_asym_zero(lo, scale);
    }
    a.scales[grp] = scale;
    a.zeros[grp] = static_cast<uint8_t>(zero);
  }
}

__global__ void permute_h_kernel(const float* h, const uint32_t* perm, uint64_t k, float* hp) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < k * k;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t a = i / k, b = i % k, pa = perm[a];
    const float v = h[pa * k + perm[b]];
    hp[i] = (a == b && v == 0.0f) ? 1.0f : v;
  }
}

__global__ void permute_w_kernel(const float* h, const float* w, const uint32_t* perm, uint64_t n, uint64_t k,
                                 float* wp) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n * k;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = i / k, pc = perm[i % k];
    wp[i] = h[pc * k + pc] == 0.0f ? 0.0f : w[r * k + pc];
  }
}

__global__ void damped_copy_kernel(const float* hp, uint64_t k, float lambda, float* a) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < k * k;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x)
    a[i] = i / k == i % k ? hp[i] + lambda : hp[i];
}

__global__ void check_diagonal_kernel(const float* a, uint64_t k, int* bad) {
  for (uint64_t c = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < k;
       c += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float v = a[c * k + c];
    if (!(v > 0.0f) || !isfinite(v)) *bad = 1;
  }
}

// One warp per row; lane l holds the block's columns l, l + 32, l + 64, l + 96. Each column's
// value is broadcast from its lane and every lane quantizes it (the same few instructions, no
// second shuffle); the update of the block's later columns reads U's row from shared memory,
// where the block's lower triangle and the columns past cnt are 0, so it needs no branch.
__global__ void __launch_bounds__(kThreads) sweep_kernel(SweepArgs a) {
  extern __shared__ float us[];  // [kMaxBlock][kMaxBlock]: U[i1 + i, i1 + j] for j >= i, else 0
  __shared__ uint32_t ps[kMaxBlock];
  constexpr int B = kMaxBlock;
  const int cnt = a.cnt;
  for (int idx = threadIdx.x; idx < B * B; idx += blockDim.x) {
    const int i = idx / B, j = idx % B;
    us[idx] = (i < cnt && j < cnt && j >= i) ? a.u[(a.i1 + i) * a.k + a.i1 + j] : 0.0f;
  }
  for (int i = threadIdx.x; i < B; i += blockDim.x) ps[i] = i < cnt ? a.perm[a.i1 + i] : 0u;
  __syncthreads();

  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  for (uint64_t r = static_cast<uint64_t>(blockIdx.x) * kWarps + warp; r < a.n;
       r += static_cast<uint64_t>(gridDim.x) * kWarps) {
    float* wr = a.wp + r * a.k + a.i1;
    float w[B / 32];
#pragma unroll
    for (int m = 0; m < B / 32; ++m) w[m] = m * 32 + lane < cnt ? wr[m * 32 + lane] : 0.0f;
    const float* sc = a.scales + r * a.groups;
    const uint8_t* zr = a.zeros + r * a.groups;
    double loss = 0;
#pragma unroll
    for (int m = 0; m < B / 32; ++m) {
      for (int l = 0; l < 32; ++l) {
        const int i = m * 32 + l;
        if (i >= cnt) break;  // uniform across the warp
        const float x = __shfl_sync(kFull, w[m], l);
        const uint64_t c = ps[i], g = c / a.group;
        const float s = sc[g];
        const uint32_t z = zr[g];
        const uint32_t q = ops::int4_code(x, s, z);
        const float dq = ops::int4_dequant(q, z, s);
        const float d = us[i * B + i];
        const float diff = x - dq;
        const float e = diff / d;
        if (lane == l) {
          a.codes[r * a.k + c] = static_cast<uint8_t>(q);
          a.dequantized[r * a.k + c] = dq;
          a.err[r * B + i] = e;
        }
        if (lane == 0) {
          const double dd = diff, du = d;
          loss += dd * dd / (du * du) / 2;
        }
#pragma unroll
        for (int m2 = 0; m2 < B / 32; ++m2) w[m2] -= e * us[i * B + m2 * 32 + lane];
      }
    }
    if (lane == 0) a.loss[r] += loss;
  }
}

__global__ void rtn_kernel(const float* w, uint64_t n, uint64_t k, uint64_t group, uint64_t groups,
                           const float* scales, const uint8_t* zeros, uint8_t* codes, float* dequantized) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n * k;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t p = (i / k) * groups + (i % k) / group;
    const uint32_t q = ops::int4_code(w[i], scales[p], zeros[p]);
    codes[i] = static_cast<uint8_t>(q);
    dequantized[i] = ops::int4_dequant(q, zeros[p], scales[p]);
  }
}

__global__ void scale_symmetric_kernel(const float* sum, uint64_t k, float f, float* out) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < k * k;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t a = i / k, b = i % k;
    out[i] = f * sum[a <= b ? a * k + b : b * k + a];
  }
}

}  // namespace

cudaError_t launch_params(const ParamsArgs& a, cudaStream_t stream) {
  if (a.n * a.groups == 0) return cudaSuccess;
  params_kernel<<<blocks_for(a.n * a.groups, kWarps), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_permute(const float* h, const float* w, const uint32_t* perm, uint64_t n, uint64_t k, float* hp,
                           float* wp, cudaStream_t stream) {
  if (k == 0) return cudaSuccess;
  permute_h_kernel<<<blocks_for(k * k, kThreads), kThreads, 0, stream>>>(h, perm, k, hp);
  if (cudaError_t e = cudaGetLastError()) return e;
  if (n == 0) return cudaSuccess;
  permute_w_kernel<<<blocks_for(n * k, kThreads), kThreads, 0, stream>>>(h, w, perm, n, k, wp);
  return cudaGetLastError();
}

cudaError_t launch_damped_copy(const float* hp, uint64_t k, float lambda, float* a, cudaStream_t stream) {
  if (k == 0) return cudaSuccess;
  damped_copy_kernel<<<blocks_for(k * k, kThreads), kThreads, 0, stream>>>(hp, k, lambda, a);
  return cudaGetLastError();
}

cudaError_t launch_check_diagonal(const float* a, uint64_t k, int* bad, cudaStream_t stream) {
  if (k == 0) return cudaSuccess;
  check_diagonal_kernel<<<blocks_for(k, kThreads), kThreads, 0, stream>>>(a, k, bad);
  return cudaGetLastError();
}

cudaError_t launch_sweep_block(const SweepArgs& a, cudaStream_t stream) {
  if (a.cnt <= 0 || a.cnt > kMaxBlock) return cudaErrorInvalidValue;
  if (a.n == 0) return cudaSuccess;
  constexpr size_t smem = sizeof(float) * kMaxBlock * kMaxBlock;  // 64 KiB: above the 48 KiB default
  if (cudaError_t e = cudaFuncSetAttribute(sweep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)))
    return e;
  unsigned grid = 0;
  if (cudaError_t e = persistent_grid(reinterpret_cast<const void*>(sweep_kernel), kThreads,
                                      (a.n + kWarps - 1) / kWarps, 0, &grid, smem))
    return e;
  sweep_kernel<<<grid, kThreads, smem, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_rtn(const float* w, uint64_t n, uint64_t k, uint64_t group, uint64_t groups, const float* scales,
                       const uint8_t* zeros, uint8_t* codes, float* dequantized, cudaStream_t stream) {
  if (n * k == 0) return cudaSuccess;
  rtn_kernel<<<blocks_for(n * k, kThreads), kThreads, 0, stream>>>(w, n, k, group, groups, scales, zeros, codes,
                                                                    dequantized);
  return cudaGetLastError();
}

cudaError_t launch_scale_symmetric(const float* sum, uint64_t k, float f, float* out, cudaStream_t stream) {
  if (k == 0) return cudaSuccess;
  scale_symmetric_kernel<<<blocks_for(k * k, kThreads), kThreads, 0, stream>>>(sum, k, f, out);
  return cudaGetLastError();
}

}  // namespace ckpt::cuda::gptq
