#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gemm_kernels.h"
#include "ops/fp8.h"
#include "ops/int4_math.h"
#include "validate/activations.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(uint64_t n) {
  uint64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535ull * 16 ? blocks : 65535ull * 16);
}

__device__ __forceinline__ double load_elem(const void* p, Elem t, uint64_t i) {
  switch (t) {
    case Elem::kF32: return static_cast<const float*>(p)[i];
    case Elem::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case Elem::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case Elem::kE4M3: return ops::e4m3fn_to_f32(static_cast<const uint8_t*>(p)[i]);
  }
  return 0;
}

__device__ __forceinline__ void store_elem(void* p, Elem t, uint64_t i, float v) {
  switch (t) {
    case Elem::kF32: static_cast<float*>(p)[i] = v; break;
    case Elem::kF16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case Elem::kBF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    case Elem::kE4M3: static_cast<uint8_t*>(p)[i] = ops::f32_to_e4m3fn(v); break;
  }
}

__device__ __forceinline__ uint32_t load_word(const void* p, uint64_t i) {
  const uint8_t* b = static_cast<const uint8_t*>(p) + 4 * i;
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

// Element i of an INT4 weight, through the formats' one index definition (ops/int4_math.h).
__device__ __forceinline__ double dequant_int4(const DequantArgs& a, uint64_t i) {
  const uint64_t n = i / a.k, k = i % a.k;
  const ops::Int4Nibble c = ops::int4_code_at(a.int4_format, a.n, a.k, n, k);
  const uint32_t q = (load_word(a.weight, c.word) >> c.shift) & 15u;
  const uint8_t* gb = static_cast<const uint8_t*>(a.g_idx);
  const uint64_t g = gb ? uint64_t(load_word(gb, k)) : k / a.group;
  uint32_t z = 8;
  if (a.zeros) {
    const ops::Int4Nibble zn = ops::int4_zero_at(a.int4_format, a.n, a.groups, n, g);
    z = ((load_word(a.zeros, zn.word) >> zn.shift) & 15u) + (a.int4_format == ops::kInt4Gptq ? a.int4_zero_offset : 0);
  }
  const float s = static_cast<float>(load_elem(a.scale, a.scale_type, ops::int4_scale_at(a.int4_format, a.n, a.groups, n, g)));
  return ops::int4_dequant(q, z, s);
}

__device__ __forceinline__ double dequant(const DequantArgs& a, uint64_t i) {
  if (a.scale_kind == ScaleKind::kInt4) return dequant_int4(a, i);
  double v = load_elem(a.weight, a.weight_type, i);
  switch (a.scale_kind) {
    case ScaleKind::kNone:
    case ScaleKind::kInt4: break;
    case ScaleKind::kTensor: v *= load_elem(a.scale, a.scale_type, 0); break;
    case ScaleKind::kChannel: v *= load_elem(a.scale, a.scale_type, i / a.k); break;
    case ScaleKind::kBlock: {
      const uint64_t row = i / a.k, col = i % a.k, k_blocks = (a.k + a.block_k - 1) / a.block_k;
      v *= load_elem(a.scale, a.scale_type, (row / a.block_n) * k_blocks + col / a.block_k);
      break;
    }
  }
  return v;
}

__global__ void activations_kernel(uint64_t rows, uint64_t k, Elem type, void* out, double* ref) {
  const uint64_t total = rows * k;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < total; i += uint64_t(gridDim.x) * blockDim.x) {
    const float x = validate::activation_value(i / k, i % k);
    const float scale = type == Elem::kE4M3 ? validate::kFp8ActivationScale : 1.0f;
    store_elem(out, type, i, x / scale);
    ref[i] = load_elem(out, type, i) * static_cast<double>(scale);
  }
}

__global__ void dequant_f64_kernel(DequantArgs a, double* out) {
  const uint64_t total = a.n * a.k;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < total; i += uint64_t(gridDim.x) * blockDim.x)
    out[i] = dequant(a, i);
}

__global__ void dequant_to_kernel(DequantArgs a, Elem type, void* out) {
  const uint64_t total = a.n * a.k;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < total; i += uint64_t(gridDim.x) * blockDim.x)
    store_elem(out, type, i, static_cast<float>(dequant(a, i)));
}

__global__ void scale_to_f32_kernel(const void* scale, Elem type, float* out) {
  *out = static_cast<float>(load_elem(scale, type, 0));
}

__global__ void compare_kernel(const void* y, Elem type, uint64_t ld_y, const double* ref, uint64_t ld_ref,
                               uint64_t rows, uint64_t n, unsigned long long* stats) {
  double max_err = 0, max_ref = 0;
  unsigned long long bad = 0;
  const uint64_t total = rows * n;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < total; i += uint64_t(gridDim.x) * blockDim.x) {
    const uint64_t r = i / n, c = i % n;
    const double v = load_elem(y, type, r * ld_y + c), want = ref[r * ld_ref + c];
    if (!isfinite(v) || !isfinite(want)) {
      ++bad;
      continue;
    }
    max_err = fmax(max_err, fabs(v - want));
    max_ref = fmax(max_ref, fabs(want));
  }
  // Non-negative doubles order like their bit patterns.
  if (max_err > 0) atomicMax(&stats[0], static_cast<unsigned long long>(__double_as_longlong(max_err)));
  if (max_ref > 0) atomicMax(&stats[1], static_cast<unsigned long long>(__double_as_longlong(max_ref)));
  if (bad) atomicAdd(&stats[2], bad);
}

}  // namespace

cudaError_t make_activations(uint64_t rows, uint64_t k, Elem type, void* out, double* ref, cudaStream_t stream) {
  activations_kernel<<<grid_for(rows * k), kThreads, 0, stream>>>(rows, k, type, out, ref);
  return cudaGetLastError();
}

cudaError_t dequantize_f64(const DequantArgs& a, double* out, cudaStream_t stream) {
  dequant_f64_kernel<<<grid_for(a.n * a.k), kThreads, 0, stream>>>(a, out);
  return cudaGetLastError();
}

cudaError_t dequantize_to(const DequantArgs& a, Elem type, void* out, cudaStream_t stream) {
  dequant_to_kernel<<<grid_for(a.n * a.k), kThreads, 0, stream>>>(a, type, out);
  return cudaGetLastError();
}

cudaError_t scale_to_f32(const void* scale, Elem type, float* out, cudaStream_t stream) {
  scale_to_f32_kernel<<<1, 1, 0, stream>>>(scale, type, out);
  return cudaGetLastError();
}

cudaError_t compare_outputs(const void* y, Elem type, uint64_t ld_y, const double* ref, uint64_t ld_ref,
                            uint64_t rows, uint64_t n, unsigned long long* stats, cudaStream_t stream) {
  compare_kernel<<<grid_for(rows * n), kThreads, 0, stream>>>(y, type, ld_y, ref, ld_ref, rows, n, stats);
  return cudaGetLastError();
}

}  // namespace ckpt::cuda
