// W4A16 GEMM on the Marlin layout: C = A W, A [m, k] and C [m, n] in f16/bf16, W int4 (marlin_gemm.h).
//
// The layout, from the mma's side (lib/ops/marlin_layout.h gives the closed form). mma.m16n8k16
// multiplies A's 16 x 16 fragment by B's 16 x 8 one; lane l of a warp holds, of B, the elements
// (k, n) = (2(l%4) + {0,1}, l/4) in one 32-bit register and (2(l%4) + 8 + {0,1}, l/4) in another
// (PTX ISA, "Matrix Fragments for mma.m16n8k16"). Marlin stores W so that one 32-bit word is what
// one lane needs of a 16 x 16 tile: both n8 halves (blk 0, 1), both register pairs, 8 nibbles:
//
//   nibble   0        4          1        5          2        6          3        7
//   (k, n)   (2c, j)  (2c+1, j)  (2c+8,j) (2c+9, j)  (2c, j+8)(2c+1,j+8) (2c+8,j+8)(2c+9,j+8)
//            `-- blk 0, reg 0 -'  `-- blk 0, reg 1 -'  `-- blk 1, reg 0 -'  `-- blk 1, reg 1 -'
//   with c = l % 4, j = l / 4 (k, n within the tile).
//
// So nibbles (a, a + 4) are one register's two halves, 16 bits apart: ((q >> 4a) & 0x000F000F)
// ORed with the bits of 1024.0 (f16, 0x6400) or 128.0 (bf16, 0x4300) is, as two 16-bit floats,
// 1024 + q or 128 + q exactly (q < 16 sits in the mantissa's low bits, whose unit there is 1) —
// one LOP3 per pair instead of two int -> float conversions (IST-DASLab/marlin dequant()). Minus
// (1024 + zero) is q - zero exactly, times the group's scale is the weight rounded once to the
// 16-bit type, which is what the dequantized reference rounds too (vLLM's Marlin does the same).
// Row kt of qweight holds the tiles of K rows 16kt..16kt+15; its words 128 nt .. 128 nt + 127 are
// the four tiles of columns 64 nt .. 64 nt + 63, lane-major: lane l's four words (one per tile w)
// are one 16-byte load, and a warp's 32 loads are one 512-byte contiguous segment.
//
// Scales, grouped: Marlin permutes each 64 columns so that position 8j + m holds column j + 8m;
// a lane's 8 columns (j + 16w + 8blk, m = 2w + blk) are then one 16-byte load. Zero points take
// the same permutation and the [0,2,4,6,1,3,5,7] interleave, so a lane's 8 zeros are one word,
// m = 2w + blk in nibble w + 4 blk. Channelwise scales are applied to the float32 sums instead
// (as Marlin does), in the accumulator's layout: lane l holds columns 8b + 2(l%4) + {0,1} of every
// n8 block b, and Marlin's channelwise permutation puts them at 32(b/4) + 8(l%4) + 2(b%4) + {0,1}.
//
// Work split. A CTA of 4 warps owns 64 columns (one 16 x 64 strip of tiles per k step), 16 rows of
// A (grid z; m > 16 re-reads W per 16 rows: M stops paying where the bf16 GEMM's reuse wins) and
// a range of k steps; each warp takes a contiguous quarter of that range, streaming its qweight
// rows through a private 8-deep ring of cp.async copies in shared memory (each lane reads back only
// the 16 bytes it copied itself, so a wait_group is all the synchronisation the ring needs).
// Batch-1 decode is bound by reading W once: the K split puts about 4 CTAs on every SM even for a
// 4096 x 4096 weight (64 strips), which keeps enough 512-byte segments in flight to cover DRAM
// latency. The warps' sums meet in shared memory in warp order; with more than one split, each
// CTA writes float32 partials and a second kernel adds them in split order: the summation order is
// fixed by the problem and the SM count, so results are deterministic.
//
// Act-order: column k of the sorted weight multiplies column perm[k] of A (gathered on load), and
// its group is g_idx[k]. A k step whose 16 sorted rows share one group (every step when the groups
// are multiples of 16 rows, as GPTQ writes them) takes the grouped path; otherwise each pair
// builds its scales and zeros row by row.
#include "marlin_gemm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "cp_async.cuh"

namespace ckpt::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kStages = 8;  // cp.async ring depth per warp: 8 x 512 bytes in flight per warp
constexpr uint64_t kMaxElems = uint64_t{1} << 31;

template <typename T>
struct Types;
template <>
struct Types<__half> {
  using Pair = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // 1024.0 in both halves
  static __device__ __forceinline__ float magic() { return 1024.0f; }
  static __device__ __forceinline__ Pair pair(float lo, float hi) { return __floats2half2_rn(lo, hi); }
  static __device__ __forceinline__ Pair pair(__half lo, __half hi) { return __halves2half2(lo, hi); }
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};
template <>
struct Types<__nv_bfloat16> {
  using Pair = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // 128.0 in both halves
  static __device__ __forceinline__ float magic() { return 128.0f; }
  static __device__ __forceinline__ Pair pair(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
  static __device__ __forceinline__ Pair pair(__nv_bfloat16 lo, __nv_bfloat16 hi) { return __halves2bfloat162(lo, hi); }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

template <typename P>
__device__ __forceinline__ uint32_t bits(P p) {
  return *reinterpret_cast<uint32_t*>(&p);
}
template <typename P>
__device__ __forceinline__ P from_bits(uint32_t u) {
  return *reinterpret_cast<P*>(&u);
}

// d += a * b on the tensor cores, float32 accumulation.
template <typename T>
__device__ __forceinline__ void mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

struct Params {
  const void* a;
  const uint4* b;  // qweight rows as 16-byte units: row kt holds n / 2 of them
  const void* scales;
  const uint32_t* zeros;
  const int32_t* g_idx;
  const int32_t* perm;
  void* c;
  float* partial;  // [splits][m][n] when splits > 1
  uint32_t m, n, k, group, splits, steps;
};

// The register pair of nibbles (a, a + 4) of q, dequantized: ((q >> 4a) & 0x000F000F | magic) is
// (magic + q_lo, magic + q_hi) exactly; minus `zm` (magic + zero per half) is q - zero exactly;
// times `s`, rounded once. `scaled` false: the channelwise path, scales applied to the sums.
template <typename T, bool kScaled>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t q, int a, typename Types<T>::Pair zm,
                                                 typename Types<T>::Pair s) {
  using P = typename Types<T>::Pair;
  const P v = __hsub2(from_bits<P>(((q >> (4 * a)) & 0x000F000Fu) | Types<T>::kMagic), zm);
  return bits(kScaled ? __hmul2(v, s) : v);
}

// A's fragment for k step `ks`: rows r0 = 16 mt + l/4 and r0 + 8 (zero past m), columns
// 16 ks + 2c + {0,1} and + 8 (through perm with act-order).
template <typename T, bool kActOrder>
__device__ __forceinline__ void load_a(const Params& p, uint32_t r0, uint32_t ks, int lane, uint32_t frag[4]) {
  const T* a = static_cast<const T*>(p.a);
  const uint32_t col = 16 * ks + 2 * (lane % 4);
#pragma unroll
  for (int h = 0; h < 2; ++h) {        // h: row r0 or r0 + 8 (registers 0/2 and 1/3)
    const uint32_t r = r0 + 8 * h;
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // columns col or col + 8
      uint32_t v = 0;
      if (r < p.m) {
        const uint32_t kk = col + 8 * half;
        if constexpr (kActOrder) {
          const T lo = a[uint64_t{r} * p.k + p.perm[kk]], hi = a[uint64_t{r} * p.k + p.perm[kk + 1]];
          v = bits(Types<T>::pair(lo, hi));
        } else {
          v = __ldg(reinterpret_cast<const uint32_t*>(a + uint64_t{r} * p.k + kk));
        }
      }
      frag[h + 2 * half] = v;
    }
  }
}

// Scales and zeros of one group for the lane's 8 columns (m = 2w + blk), as (magic + zero) and
// scale pairs with the same value in both halves.
template <typename T, bool kChannel, bool kZeros>
__device__ __forceinline__ void load_group(const Params& p, uint32_t g, uint32_t nt, int lane,
                                           typename Types<T>::Pair zm[8], typename Types<T>::Pair s[8]) {
  using P = typename Types<T>::Pair;
  const uint32_t j = lane / 4;
  if constexpr (!kChannel) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(p.scales) + uint64_t{g} * p.n +
                                                           64 * nt + 8 * j));
    const T* sv = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int m = 0; m < 8; ++m) s[m] = Types<T>::pair(sv[m], sv[m]);
  }
  uint32_t zw = 0x88888888u;  // uint4b8: zero 8 everywhere
  if constexpr (kZeros) zw = __ldg(p.zeros + uint64_t{g} * (p.n / 8) + 8 * nt + j);
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    const float z = static_cast<float>((zw >> (4 * (m / 2 + 4 * (m % 2)))) & 0xF);
    zm[m] = Types<T>::pair(Types<T>::magic() + z, Types<T>::magic() + z);
  }
}

// One k step of one warp: W's 16 x 64 strip (the lane's 4 words) times A's fragment.
template <typename T, bool kScaled>
__device__ __forceinline__ void step(const uint4& q4, const uint32_t a[4], const typename Types<T>::Pair zm[8],
                                     const typename Types<T>::Pair s[8], float acc[4][2][4]) {
  const uint32_t q[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
#pragma unroll
    for (int blk = 0; blk < 2; ++blk) {
      const int m = 2 * w + blk;
      const uint32_t b0 = dequant_pair<T, kScaled>(q[w], 2 * blk, zm[m], s[m]);
      const uint32_t b1 = dequant_pair<T, kScaled>(q[w], 2 * blk + 1, zm[m], s[m]);
      mma<T>(acc[w][blk], a, b0, b1);
    }
  }
}

// The act-order step whose 16 rows span groups: each half of each pair with its own row's group.
template <typename T, bool kZeros>
__device__ __forceinline__ void step_mixed_groups(const Params& p, const uint4& q4, const uint32_t a[4], uint32_t ks,
                                                  uint32_t nt, int lane, float acc[4][2][4]) {
  using P = typename Types<T>::Pair;
  const uint32_t q[4] = {q4.x, q4.y, q4.z, q4.w};
  const T* scales = static_cast<const T*>(p.scales);
  const uint32_t j = lane / 4;
  uint32_t grp[4];  // groups of rows 2c, 2c + 1, 2c + 8, 2c + 9 of the step
#pragma unroll
  for (int i = 0; i < 4; ++i) grp[i] = p.g_idx[16 * ks + 2 * (lane % 4) + (i % 2) + 8 * (i / 2)];
  auto half_of = [&](uint32_t g, int m, float& z, T& s) {
    s = scales[uint64_t{g} * p.n + 64 * nt + 8 * j + m];
    z = 8.0f;
    if constexpr (kZeros)
      z = static_cast<float>((p.zeros[uint64_t{g} * (p.n / 8) + 8 * nt + j] >> (4 * (m / 2 + 4 * (m % 2)))) & 0xF);
  };
#pragma unroll
  for (int w = 0; w < 4; ++w) {
#pragma unroll
    for (int blk = 0; blk < 2; ++blk) {
      const int m = 2 * w + blk;
      uint32_t b[2];
#pragma unroll
      for (int reg = 0; reg < 2; ++reg) {  // reg 0: rows 2c, 2c + 1; reg 1: rows 2c + 8, 2c + 9
        float z0, z1;
        T s0, s1;
        half_of(grp[2 * reg], m, z0, s0);
        half_of(grp[2 * reg + 1], m, z1, s1);
        const P zm = Types<T>::pair(Types<T>::magic() + z0, Types<T>::magic() + z1);
        b[reg] = dequant_pair<T, true>(q[w], 2 * blk + reg, zm, Types<T>::pair(s0, s1));
      }
      mma<T>(acc[w][blk], a, b[0], b[1]);
    }
  }
}

// Channelwise scale of column `col` (0..n): its place in Marlin's channelwise permutation.
template <typename T>
__device__ __forceinline__ float channel_scale(const Params& p, uint32_t col) {
  const uint32_t c64 = col % 64, b = c64 / 8, c = (c64 % 8) / 2, h = c64 % 2;
  return Types<T>::to_float(static_cast<const T*>(p.scales)[col - c64 + 32 * (b / 4) + 8 * c + 2 * (b % 4) + h]);
}

template <typename T, bool kChannel, bool kZeros, bool kActOrder>
__global__ void __launch_bounds__(kThreads) marlin_gemm_kernel(Params p) {
  using P = typename Types<T>::Pair;
  __shared__ uint4 ring[kWarps][kStages][32];
  __shared__ float reduce[kWarps - 1][32][33];  // [warp][value][lane], padded against bank conflicts

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const uint32_t nt = blockIdx.x, split = blockIdx.y, r0 = 16 * blockIdx.z + lane / 4;
  // Slice (split, warp) of the k steps: contiguous, sizes differing by at most one.
  const uint32_t slices = p.splits * kWarps, slice = split * kWarps + warp;
  const uint32_t ks0 = static_cast<uint32_t>(uint64_t{p.steps} * slice / slices);
  const uint32_t ks1 = static_cast<uint32_t>(uint64_t{p.steps} * (slice + 1) / slices);
  const uint32_t count = ks1 - ks0;

  float acc[4][2][4];
#pragma unroll
  for (int w = 0; w < 4; ++w)
#pragma unroll
    for (int blk = 0; blk < 2; ++blk)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[w][blk][i] = 0.0f;

  // The lane's 16 bytes of qweight row kt: words 128 nt + 4 lane .. + 3.
  const uint4* bsrc = p.b + (uint64_t{p.n} / 2) * ks0 + 32 * nt + lane;
  const uint64_t row_units = p.n / 2;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (static_cast<uint32_t>(s) < count) cp_async16(&ring[warp][s][lane], bsrc + row_units * s);
    cp_async_commit();
  }

  P zm[8], sc[8];
  uint32_t loaded_group = 0xFFFFFFFFu;
  if constexpr (kChannel) {
    load_group<T, true, kZeros>(p, 0, nt, lane, zm, sc);
    loaded_group = 0;
  }
  for (uint32_t i = 0; i < count; ++i) {
    cp_async_wait<kStages - 2>();  // step i's copy (issued kStages - 1 commits ago) has landed
    const uint32_t next = i + kStages - 1;
    if (next < count) cp_async16(&ring[warp][next % kStages][lane], bsrc + row_units * next);
    cp_async_commit();
    const uint4 q4 = ring[warp][i % kStages][lane];
    const uint32_t ks = ks0 + i;
    uint32_t a[4];
    load_a<T, kActOrder>(p, r0, ks, lane, a);
    if constexpr (kChannel) {
      step<T, false>(q4, a, zm, sc, acc);
    } else {
      uint32_t g = 16 * ks / p.group;
      if constexpr (kActOrder) {
        g = static_cast<uint32_t>(p.g_idx[16 * ks]);
        if (g != static_cast<uint32_t>(p.g_idx[16 * ks + 15])) {
          step_mixed_groups<T, kZeros>(p, q4, a, ks, nt, lane, acc);
          continue;
        }
      }
      if (g != loaded_group) {
        load_group<T, false, kZeros>(p, g, nt, lane, zm, sc);
        loaded_group = g;
      }
      step<T, true>(q4, a, zm, sc, acc);
    }
  }
  cp_async_wait<0>();

  // The warps' sums, added in warp order by warp 0.
  if (warp > 0) {
#pragma unroll
    for (int w = 0; w < 4; ++w)
#pragma unroll
      for (int blk = 0; blk < 2; ++blk)
#pragma unroll
        for (int i = 0; i < 4; ++i) reduce[warp - 1][8 * w + 4 * blk + i][lane] = acc[w][blk][i];
  }
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int from = 0; from < kWarps - 1; ++from)
#pragma unroll
    for (int w = 0; w < 4; ++w)
#pragma unroll
      for (int blk = 0; blk < 2; ++blk)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[w][blk][i] += reduce[from][8 * w + 4 * blk + i][lane];

  // Lane l holds, per tile w and half blk, rows r0 (i < 2) and r0 + 8 of columns
  // 64 nt + 16 w + 8 blk + 2 (l % 4) + i % 2.
#pragma unroll
  for (int w = 0; w < 4; ++w)
#pragma unroll
    for (int blk = 0; blk < 2; ++blk)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t r = r0 + 8 * h;
        if (r >= p.m) continue;
        const uint32_t col = 64 * nt + 16 * w + 8 * blk + 2 * (lane % 4);
        float v0 = acc[w][blk][2 * h], v1 = acc[w][blk][2 * h + 1];
        if (p.splits > 1) {
          float* out = p.partial + (uint64_t{split} * p.m + r) * p.n + col;
          *reinterpret_cast<float2*>(out) = make_float2(v0, v1);
          continue;
        }
        if constexpr (kChannel) {
          v0 *= channel_scale<T>(p, col);
          v1 *= channel_scale<T>(p, col + 1);
        }
        *reinterpret_cast<P*>(static_cast<T*>(p.c) + uint64_t{r} * p.n + col) = Types<T>::pair(v0, v1);
      }
}

// The K split's partial sums added in split order (then the channelwise scale), one element per
// thread.
template <typename T, bool kChannel>
__global__ void marlin_reduce_kernel(Params p) {
  const uint64_t e = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x, total = uint64_t{p.m} * p.n;
  if (e >= total) return;
  float v = 0.0f;
  for (uint32_t s = 0; s < p.splits; ++s) v += p.partial[s * total + e];
  if constexpr (kChannel) v *= channel_scale<T>(p, static_cast<uint32_t>(e % p.n));
  static_cast<T*>(p.c)[e] = Types<T>::from_float(v);
}

bool channelwise(const MarlinGemmArgs& a) {
  return a.group_size == -1 || static_cast<uint64_t>(a.group_size) >= a.k;
}

uint32_t m_tiles(const MarlinGemmArgs& a) { return static_cast<uint32_t>((a.m + 15) / 16); }

// K splits: enough CTAs for about 4 per SM, each warp keeping at least 4 k steps.
uint32_t splits_of(const MarlinGemmArgs& a) {
  const uint64_t ctas = (a.n / 64) * m_tiles(a);
  const uint64_t want = (4 * static_cast<uint64_t>(std::max(a.sm_count, 1)) + ctas - 1) / ctas;
  const uint64_t most = std::max<uint64_t>(1, (a.k / 16) / (4 * kWarps));
  return static_cast<uint32_t>(std::clamp<uint64_t>(want, 1, most));
}

template <typename T, bool kChannel, bool kZeros, bool kActOrder>
cudaError_t launch(const Params& p, uint32_t mt, cudaStream_t stream) {
  marlin_gemm_kernel<T, kChannel, kZeros, kActOrder><<<dim3(p.n / 64, p.splits, mt), kThreads, 0, stream>>>(p);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || p.splits == 1) return e;
  const uint64_t total = uint64_t{p.m} * p.n;
  marlin_reduce_kernel<T, kChannel><<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch(const Params& p, bool channel, bool zeros, bool act_order, uint32_t mt, cudaStream_t stream) {
  if (channel) {
    return zeros ? launch<T, true, true, false>(p, mt, stream) : launch<T, true, false, false>(p, mt, stream);
  }
  if (act_order) {
    return zeros ? launch<T, false, true, true>(p, mt, stream) : launch<T, false, false, true>(p, mt, stream);
  }
  return zeros ? launch<T, false, true, false>(p, mt, stream) : launch<T, false, false, false>(p, mt, stream);
}

}  // namespace

Int4Status MarlinGemm::can_implement(const MarlinGemmArgs& a) {
  if (a.dtype != 0 && a.dtype != 1) return Int4Status::kInvalidProblem;
  if (a.m == 0 || a.n == 0 || a.k == 0 || a.n % 64 != 0 || a.k % 16 != 0) return Int4Status::kInvalidProblem;
  if (a.m * a.k >= kMaxElems || a.m * a.n >= kMaxElems || a.k * a.n >= kMaxElems) return Int4Status::kInvalidProblem;
  if (!a.a || !a.b || !a.scales || !a.c || reinterpret_cast<uintptr_t>(a.a) % 16 != 0) return Int4Status::kInvalidProblem;
  const bool act_order = a.g_idx != nullptr || a.perm != nullptr;
  // Act-order needs groups: a channelwise weight has one, and its sorted order is the identity.
  if (act_order && (!a.g_idx || !a.perm || channelwise(a))) return Int4Status::kInvalidProblem;
  if (!channelwise(a) && !act_order && (a.group_size % 16 != 0 || a.k % static_cast<uint64_t>(a.group_size) != 0))
    return Int4Status::kInvalidProblem;
  if (a.group_size == 0 || a.group_size < -1) return Int4Status::kInvalidProblem;
  return Int4Status::kSuccess;
}

size_t MarlinGemm::get_workspace_size(const MarlinGemmArgs& a) {
  const uint32_t s = splits_of(a);
  return s > 1 ? sizeof(float) * s * a.m * a.n : 0;
}

Int4Status MarlinGemm::run(const MarlinGemmArgs& a, void* workspace, cudaStream_t stream) {
  const Int4Status ok = can_implement(a);
  if (ok != Int4Status::kSuccess) return ok;
  Params p{};
  p.a = a.a;
  p.b = reinterpret_cast<const uint4*>(a.b);
  p.scales = a.scales;
  p.zeros = a.zeros;
  p.g_idx = a.g_idx;
  p.perm = a.perm;
  p.c = a.c;
  p.m = static_cast<uint32_t>(a.m);
  p.n = static_cast<uint32_t>(a.n);
  p.k = static_cast<uint32_t>(a.k);
  p.group = channelwise(a) ? p.k : static_cast<uint32_t>(a.group_size);
  p.splits = splits_of(a);
  p.steps = p.k / 16;
  p.partial = static_cast<float*>(workspace);
  if (p.splits > 1 && !workspace) return Int4Status::kWorkspaceNull;
  const bool channel = channelwise(a), act_order = a.g_idx != nullptr;
  const cudaError_t e = a.dtype == 0 ? dispatch<__half>(p, channel, a.zeros != nullptr, act_order, m_tiles(a), stream)
                                     : dispatch<__nv_bfloat16>(p, channel, a.zeros != nullptr, act_order, m_tiles(a), stream);
  return e == cudaSuccess ? Int4Status::kSuccess : fail(e);
}

}  // namespace ckpt::cuda
