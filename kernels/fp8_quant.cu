// FP8 E4M3FN quantization kernels: a per-block amax and the quantize pass (lib/ops/fp8_quant.h
// gives the exact rules). Each thread handles vectors of 8 consecutive elements (one 16-byte
// load for 16-bit inputs); a block's scale is found with three 32-bit divisions per vector.
// The code is the hardware's saturating RNE conversion after the same clamp to ±448 as the CPU
// (identical results: specs/quant_formats.md §1d; checked bit for bit by tests/gpu/).
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "fp8_quant.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr uint32_t kVec = 8;

// kSingle: one block (per-tensor); kAligned: every 8-element vector lies in one block;
// kGeneral: any shape (the block of each element is computed on its own).
enum Mode { kSingle, kAligned, kGeneral };

// Where the chunk sits in the weight, in 32-bit pieces (the launchers check the ranges). Each
// divisor that is a power of two also has its shift (else -1): block sizes of 128 or 1 and many
// widths divide with a shift instead of a ~20-instruction integer division.
struct Geo {
  uint32_t cols, block_rows, block_cols;
  int cols_shift, rows_shift, block_shift;  // log2 of cols, block_rows, block_cols, or -1
  uint32_t r0, c0;  // row and column of the chunk's first element
  uint64_t grid_cols, group_base;
};

__device__ __forceinline__ uint32_t divide(uint32_t n, uint32_t d, int shift) { return shift >= 0 ? n >> shift : n / d; }

__device__ __forceinline__ uint64_t group_at(const Geo& g, uint32_t i) {
  const uint32_t pos = g.c0 + i;
  const uint32_t r = divide(pos, g.cols, g.cols_shift);
  const uint32_t c = pos - r * g.cols;
  const uint32_t row = g.r0 + r;
  return static_cast<uint64_t>(divide(row, g.block_rows, g.rows_shift)) * g.grid_cols +
         divide(c, g.block_cols, g.block_shift) - g.group_base;
}

template <int Type>
__device__ __forceinline__ float load_one(const void* in, uint32_t i) {
  if (Type == kFp8InBF16) return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(in)[i]) << 16);
  if (Type == kFp8InF16) return __half2float(static_cast<const __half*>(in)[i]);
  return static_cast<const float*>(in)[i];
}

template <int Type>
__device__ __forceinline__ void load_vec(const void* in, uint32_t i0, float x[kVec]) {
  if (Type == kFp8InF32) {
    const float4 a = static_cast<const float4*>(in)[i0 / 4], b = static_cast<const float4*>(in)[i0 / 4 + 1];
    x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    return;
  }
  const uint4 u = static_cast<const uint4*>(in)[i0 / 8];
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (Type == kFp8InBF16) {
      x[2 * k] = __uint_as_float(w[k] << 16);
      x[2 * k + 1] = __uint_as_float(w[k] & 0xFFFF0000u);
    } else {
      __half2_raw h;
      h.x = static_cast<unsigned short>(w[k] & 0xFFFFu);
      h.y = static_cast<unsigned short>(w[k] >> 16);
      const float2 f = __half22float2(__half2(h));
      x[2 * k] = f.x, x[2 * k + 1] = f.y;
    }
  }
}

__device__ __forceinline__ unsigned magnitude_bits(float x) { return __float_as_uint(x) & 0x7FFFFFFFu; }

template <int Type, int M>
__global__ void __launch_bounds__(kThreads) amax_kernel(const void* in, Geo g, uint32_t count, unsigned* amax) {
  const uint32_t nvec = (count + kVec - 1) / kVec;
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t stride = gridDim.x * blockDim.x;
  unsigned running = 0;  // kSingle: one block, reduced once at the end
  // The loop bound is the same for all lanes of a warp, so the warp stays converged for the
  // collective operations below.
  for (uint32_t base = blockIdx.x * blockDim.x + (threadIdx.x & ~31u); base < nvec; base += stride) {
    const uint32_t v = base + lane;
    uint64_t grp = ~0ull;
    unsigned m = 0;
    if (v < nvec) {
      const uint32_t i0 = v * kVec;
      if (M != kGeneral && i0 + kVec <= count) {
        float x[kVec];
        load_vec<Type>(in, i0, x);
#pragma unroll
        for (uint32_t k = 0; k < kVec; ++k) m = max(m, magnitude_bits(x[k]));
        grp = M == kSingle ? 0 : group_at(g, i0);
      } else {
        const uint32_t n = min(kVec, count - i0);
        for (uint32_t k = 0; k < n; ++k) {
          const uint64_t gk = M == kSingle ? 0 : group_at(g, i0 + k);
          if (gk != grp && grp != ~0ull) atomicMax(&amax[grp], m), m = 0;
          grp = gk;
          m = max(m, magnitude_bits(load_one<Type>(in, i0 + k)));
        }
      }
    }
    if (M == kSingle) {
      running = max(running, m);
      continue;
    }
    // Warp-aggregated update: one atomic per distinct block among the warp's lanes.
    const unsigned peers = __match_any_sync(0xFFFFFFFFu, grp);
    const unsigned best = __reduce_max_sync(peers, m);
    if (grp != ~0ull && lane == static_cast<uint32_t>(__ffs(peers) - 1)) atomicMax(&amax[grp], best);
  }
  if (M == kSingle) {
    running = __reduce_max_sync(0xFFFFFFFFu, running);
    if (lane == 0 && running) atomicMax(&amax[0], running);
  }
}

__device__ __forceinline__ uint8_t encode(float x, float scale) {
  const float v = fminf(fmaxf(__fdiv_rn(x, scale), -448.0f), 448.0f);
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// The report's error terms: float32 per thread (a thread sees ~1000 elements), double across
// threads; max |err| as magnitude bits. Decoding uses the hardware conversion (exact).
struct Err {
  float se = 0, sw = 0;
  unsigned me = 0;
  __device__ __forceinline__ void add(float x, uint8_t code, float scale) {
    const float dec = __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));
    const float e = fmaf(-dec, scale, x);
    se = fmaf(e, e, se);
    sw = fmaf(x, x, sw);
    me = max(me, __float_as_uint(e) & 0x7FFFFFFFu);
  }
};

template <int Type, int M>
__global__ void __launch_bounds__(kThreads) quantize_kernel(const void* in, Geo g, uint32_t count, const float* scales,
                                                            uint8_t* codes, double* partials) {
  const uint32_t nvec = (count + kVec - 1) / kVec;
  const uint32_t stride = gridDim.x * blockDim.x;
  Err err;
  for (uint32_t v = blockIdx.x * blockDim.x + threadIdx.x; v < nvec; v += stride) {
    const uint32_t i0 = v * kVec;
    if (M != kGeneral && i0 + kVec <= count) {
      float x[kVec];
      load_vec<Type>(in, i0, x);
      const float s = scales[M == kSingle ? 0 : group_at(g, i0)];
      uint32_t lo = 0, hi = 0;
#pragma unroll
      for (uint32_t k = 0; k < kVec; ++k) {
        const uint8_t c = encode(x[k], s);
        err.add(x[k], c, s);
        if (k < 4) lo |= static_cast<uint32_t>(c) << (8 * k);
        else hi |= static_cast<uint32_t>(c) << (8 * (k - 4));
      }
      reinterpret_cast<uint2*>(codes)[v] = make_uint2(lo, hi);
    } else {
      const uint32_t n = min(kVec, count - i0);
      for (uint32_t k = 0; k < n; ++k) {
        const float x = load_one<Type>(in, i0 + k);
        const float s = scales[M == kSingle ? 0 : group_at(g, i0 + k)];
        const uint8_t c = encode(x, s);
        err.add(x, c, s);
        codes[i0 + k] = c;
      }
    }
  }
  // Block reduction in a fixed order: the partials depend only on the launch shape.
  __shared__ double sh[kThreads / 32][3];
  double se = err.se, sw = err.sw, me = __uint_as_float(err.me);
  for (int off = 16; off > 0; off >>= 1) {
    se += __shfl_down_sync(0xFFFFFFFFu, se, off);
    sw += __shfl_down_sync(0xFFFFFFFFu, sw, off);
    me = fmax(me, __shfl_down_sync(0xFFFFFFFFu, me, off));
  }
  const int warp = threadIdx.x / 32;
  if ((threadIdx.x & 31) == 0) sh[warp][0] = se, sh[warp][1] = sw, sh[warp][2] = me;
  __syncthreads();
  if (threadIdx.x == 0) {
    se = 0, sw = 0, me = 0;
    for (int w = 0; w < kThreads / 32; ++w) se += sh[w][0], sw += sh[w][1], me = fmax(me, sh[w][2]);
    partials[3 * blockIdx.x] = se;
    partials[3 * blockIdx.x + 1] = sw;
    partials[3 * blockIdx.x + 2] = me;
  }
}

bool make_geo(const Fp8ChunkDesc& d, Geo& g, Mode& mode) {
  // 32-bit index math: the chunk and every row/column index must fit.
  if (d.count >= (1ull << 31) || d.cols >= (1ull << 31) || d.rows >= (1ull << 32) || d.block_rows == 0 ||
      d.block_cols == 0 || d.cols == 0)
    return false;
  g.cols = static_cast<uint32_t>(d.cols);
  g.block_rows = static_cast<uint32_t>(d.block_rows < d.rows ? d.block_rows : d.rows);
  g.block_cols = static_cast<uint32_t>(d.block_cols < d.cols ? d.block_cols : d.cols);
  g.r0 = static_cast<uint32_t>(d.first / d.cols);
  g.c0 = static_cast<uint32_t>(d.first % d.cols);
  g.grid_cols = (d.cols + g.block_cols - 1) / g.block_cols;
  auto shift_of = [](uint32_t v) { return (v & (v - 1)) == 0 ? __builtin_ctz(v) : -1; };
  g.cols_shift = shift_of(g.cols);
  g.rows_shift = shift_of(g.block_rows);
  g.block_shift = shift_of(g.block_cols);
  g.group_base = d.group_base;
  if (g.block_rows >= d.rows && g.block_cols >= d.cols) mode = kSingle;
  else if (d.cols % kVec == 0 && g.block_cols % kVec == 0 && d.first % kVec == 0) mode = kAligned;
  else mode = kGeneral;
  return true;
}

int ctas_for(uint64_t count) {
  const uint64_t nvec = (count + kVec - 1) / kVec;
  const uint64_t ctas = (nvec + kThreads - 1) / kThreads;
  return static_cast<int>(ctas < kFp8MaxCtas ? (ctas ? ctas : 1) : kFp8MaxCtas);
}

template <template <int, int> class Launch, class... Args>
cudaError_t dispatch(Fp8InputType type, Mode mode, Args... args) {
#define CKPT_FP8_CASE(T, M) \
  if (type == T && mode == M) return Launch<T, M>::run(args...);
  CKPT_FP8_CASE(kFp8InBF16, kSingle) CKPT_FP8_CASE(kFp8InBF16, kAligned) CKPT_FP8_CASE(kFp8InBF16, kGeneral)
  CKPT_FP8_CASE(kFp8InF16, kSingle) CKPT_FP8_CASE(kFp8InF16, kAligned) CKPT_FP8_CASE(kFp8InF16, kGeneral)
  CKPT_FP8_CASE(kFp8InF32, kSingle) CKPT_FP8_CASE(kFp8InF32, kAligned) CKPT_FP8_CASE(kFp8InF32, kGeneral)
#undef CKPT_FP8_CASE
  return cudaErrorInvalidValue;
}

template <int Type, int M>
struct AmaxLaunch {
  static cudaError_t run(const void* in, Geo g, uint32_t count, unsigned* amax, cudaStream_t s) {
    amax_kernel<Type, M><<<ctas_for(count), kThreads, 0, s>>>(in, g, count, amax);
    return cudaGetLastError();
  }
};

template <int Type, int M>
struct QuantizeLaunch {
  static cudaError_t run(const void* in, Geo g, uint32_t count, const float* scales, uint8_t* codes,
                         double* partials, cudaStream_t s) {
    quantize_kernel<Type, M><<<ctas_for(count), kThreads, 0, s>>>(in, g, count, scales, codes, partials);
    return cudaGetLastError();
  }
};

}  // namespace

cudaError_t fp8_amax_launch(const void* in, Fp8InputType type, const Fp8ChunkDesc& d, unsigned* amax_bits,
                            cudaStream_t stream) {
  Geo g;
  Mode mode;
  if (!make_geo(d, g, mode)) return cudaErrorInvalidValue;
  if (d.count == 0) return cudaSuccess;
  return dispatch<AmaxLaunch>(type, mode, in, g, static_cast<uint32_t>(d.count), amax_bits, stream);
}

cudaError_t fp8_quantize_launch(const void* in, Fp8InputType type, const Fp8ChunkDesc& d, const float* scales,
                                uint8_t* codes, double* partials, int* ctas, cudaStream_t stream) {
  Geo g;
  Mode mode;
  if (!make_geo(d, g, mode)) return cudaErrorInvalidValue;
  *ctas = d.count ? ctas_for(d.count) : 0;
  if (d.count == 0) return cudaSuccess;
  return dispatch<QuantizeLaunch>(type, mode, in, g, static_cast<uint32_t>(d.count), scales, codes, partials,
                                  stream);
}

}  // namespace ckpt::cuda
