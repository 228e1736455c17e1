// Marlin relayout kernels (the layout: lib/ops/marlin_layout.h).
//
// Weights: a 256-thread CTA handles 4 K-tiles x 2 N-tiles (64 K-rows x 128 columns):
// 1. the source codes of that block are loaded with coalesced reads and put into shared memory
//    in GPTQ layout, G[8 rows of 8 K-values][128 columns] (AWQ: an AWQ tile, then regrouped;
//    compressed-tensors: a [128][8] tile, then transposed; act-order: each word built from the
//    8 source words of its sorted K-rows);
// 2. each thread makes 4 Marlin words: word (th, warp) of a 16 x 64 tile takes byte th % 4 of
//    G[2kt][c], G[2kt+1][c], G[2kt][c+8], G[2kt+1][c+8] (c = 16 warp + th / 4), low nibbles into
//    nibbles 0..3 and high nibbles into 4..7, and stores it — 256 consecutive words per K-tile.
// Scales and zero points: one thread per output element / word.
#include <cstdint>

#include "marlin_repack.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kTK = 4;  // K-tiles per CTA
constexpr int kTN = 2;  // N-tiles per CTA
constexpr int kCols = 64 * kTN;
constexpr int kGRows = 2 * kTK;  // GPTQ rows (8 K-values each)
__constant__ int kAwqNib[8] = {0, 4, 1, 5, 2, 6, 3, 7};   // column 8m + c sits in AWQ nibble kAwqNib[c]
__constant__ int kOrder8[8] = {0, 2, 4, 6, 1, 3, 5, 7};

struct RepackParams {
  int source;
  uint32_t n, k, kt0, kt1;
  const uint32_t* src;
  const int32_t* perm;
  uint32_t* out;
};

__device__ __forceinline__ uint32_t nib(uint32_t w, uint32_t i) { return (w >> (4 * i)) & 15u; }

__global__ void __launch_bounds__(kThreads) repack_kernel(RepackParams p) {
  __shared__ uint32_t g[kGRows][kCols + 1];
  // AWQ tile [64 K-rows][16 + 1 words], or compressed-tensors tile [128 rows][8 + 1 words].
  constexpr int kAwqStride = kCols / 8 + 1, kCtStride = kGRows + 1;
  __shared__ uint32_t stage[kTK * 16 * kAwqStride > kCols * kCtStride ? kTK * 16 * kAwqStride : kCols * kCtStride];
  const uint32_t kt_base = p.kt0 + blockIdx.y * kTK, nt_base = blockIdx.x * kTN;
  const uint32_t k_tiles = p.k / 16, n_tiles = p.n / 64;
  const uint32_t kw = p.k / 8, c_base = 64 * nt_base;
  const uint32_t t = threadIdx.x;
  // 1. GPTQ-layout words of K-rows [16 kt_base, 16 (kt_base + kTK)) x columns [c_base, c_base + 128).
  if (p.perm) {
    for (uint32_t idx = t; idx < kGRows * kCols; idx += kThreads) {
      const uint32_t j = idx / kCols, c = idx % kCols;
      const uint32_t kt = kt_base + j / 2, col = c_base + c;
      uint32_t w = 0;
      if (kt < p.kt1 && nt_base + c / 64 < n_tiles) {
        for (uint32_t i = 0; i < 8; ++i) {
          const uint32_t from = static_cast<uint32_t>(p.perm[16 * kt_base + 8 * j + i]);
          const uint32_t word = p.source == 0 ? p.src[static_cast<uint64_t>(from / 8) * p.n + col]
                                              : p.src[static_cast<uint64_t>(col) * kw + from / 8];
          w |= nib(word, from % 8) << (4 * i);
        }
      }
      g[j][c] = w;
    }
  } else if (p.source == 0) {
    for (uint32_t idx = t; idx < kGRows * kCols; idx += kThreads) {
      const uint32_t j = idx / kCols, c = idx % kCols;
      g[j][c] = kt_base + j / 2 < p.kt1 && nt_base + c / 64 < n_tiles
                    ? p.src[static_cast<uint64_t>(2 * kt_base + j) * p.n + c_base + c]
                    : 0u;
    }
  } else if (p.source == 1) {
    // AWQ rows [16 kt_base, +64) x words [8 nt_base, +16)
    for (uint32_t idx = t; idx < kTK * 16 * (kCols / 8); idx += kThreads) {
      const uint32_t kr = idx / (kCols / 8), w = idx % (kCols / 8);
      stage[kr * kAwqStride + w] = kt_base + kr / 16 < p.kt1 && nt_base + w / 8 < n_tiles
                         ? p.src[static_cast<uint64_t>(16 * kt_base + kr) * (p.n / 8) + 8 * nt_base + w]
                         : 0u;
    }
    __syncthreads();
    for (uint32_t idx = t; idx < kGRows * kCols; idx += kThreads) {
      const uint32_t j = idx / kCols, c = idx % kCols;
      uint32_t w = 0;
      for (uint32_t i = 0; i < 8; ++i) w |= nib(stage[(8 * j + i) * kAwqStride + c / 8], kAwqNib[c % 8]) << (4 * i);
      g[j][c] = w;
    }
  } else {
    // compressed-tensors rows [c_base, +128) x words [2 kt_base, +8): stage[c][j] (as [128][8])
    uint32_t* ct = stage;
    for (uint32_t idx = t; idx < kCols * kGRows; idx += kThreads) {
      const uint32_t c = idx / kGRows, j = idx % kGRows;
      ct[c * kCtStride + j] = kt_base + j / 2 < p.kt1 && nt_base + c / 64 < n_tiles
                                     ? p.src[static_cast<uint64_t>(c_base + c) * kw + 2 * kt_base + j]
                                     : 0u;
    }
    __syncthreads();
    for (uint32_t idx = t; idx < kGRows * kCols; idx += kThreads) {
      const uint32_t j = idx / kCols, c = idx % kCols;
      g[j][c] = ct[c * kCtStride + j];
    }
  }
  __syncthreads();
  // 2. Marlin words.
  for (uint32_t idx = t; idx < kTK * kTN * 128; idx += kThreads) {
    const uint32_t ktl = idx / (kTN * 128), rest = idx % (kTN * 128);
    const uint32_t ntl = rest / 128, w = rest % 128;
    const uint32_t kt = kt_base + ktl;
    if (kt >= p.kt1 || nt_base + ntl >= n_tiles) continue;
    const uint32_t th = w / 4, warp = w % 4, b = th % 4;
    const uint32_t c = 64 * ntl + 16 * warp + th / 4;
    const uint32_t s = 8 * b;
    const uint32_t x = ((g[2 * ktl][c] >> s) & 0xFF) | ((g[2 * ktl + 1][c] >> s) & 0xFF) << 8 |
                       ((g[2 * ktl][c + 8] >> s) & 0xFF) << 16 | ((g[2 * ktl + 1][c + 8] >> s) & 0xFF) << 24;
    uint32_t l = x & 0x0F0F0F0Fu, h = (x >> 4) & 0x0F0F0F0Fu;
    l = (l | l >> 4) & 0x00FF00FFu;
    h = (h | h >> 4) & 0x00FF00FFu;
    l = (l | l >> 8) & 0xFFFFu;
    h = (h | h >> 8) & 0xFFFFu;
    p.out[static_cast<uint64_t>(kt - p.kt0) * 2 * p.n + 128 * (nt_base + ntl) + w] = l | h << 16;
  }
  (void)k_tiles;
}

// Output position p of a row takes its value from position from(p) (marlin_permute_scales).
__device__ __forceinline__ uint32_t grouped_from(uint32_t p) { return (p / 64) * 64 + (p % 64) / 8 + 8 * (p % 8); }
__device__ __forceinline__ uint32_t channel_from(uint32_t p) {
  const uint32_t off[8] = {0, 1, 8, 9, 16, 17, 24, 25};
  return (p / 32) * 32 + 2 * ((p % 32) / 8) + off[p % 8];
}

template <typename T>
__global__ void scales_kernel(const T* in, T* out, uint64_t total, uint32_t n, bool grouped, bool inverse) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const uint64_t row = i / n;
  const uint32_t pos = static_cast<uint32_t>(i % n);
  const uint32_t f = grouped ? grouped_from(pos) : channel_from(pos);
  if (inverse) out[row * n + f] = in[i];
  else out[i] = in[row * n + f];
}

__global__ void zeros_kernel(MarlinZerosArgs a) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t words = a.groups * (a.n / 8);
  if (i >= words) return;
  const uint64_t g = i / (a.n / 8), m = i % (a.n / 8);
  uint32_t w = 0;
  for (int k = 0; k < 8; ++k) {
    const uint64_t col = grouped_from(static_cast<uint32_t>(8 * m + kOrder8[k]));
    uint32_t z;
    if (a.source == 0) z = nib(a.zeros[g * (a.n / 8) + col / 8], col % 8) + static_cast<uint32_t>(a.zero_offset);
    else if (a.source == 1) z = nib(a.zeros[g * (a.n / 8) + col / 8], kAwqNib[col % 8]);
    else z = nib(a.zeros[(col / 8) * a.groups + g], col % 8);
    if (z > 15) *a.bad = 1;
    w |= (z & 15u) << (4 * k);
  }
  a.out[i] = w;
}

unsigned blocks_for(uint64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

Int4Status MarlinRepackKernel::can_implement(const MarlinRepackArgs& a) {
  const bool ok = a.source >= 0 && a.source <= 2 && a.n > 0 && a.k > 0 && a.n % 64 == 0 && a.k % 16 == 0 &&
                  a.kt0 < a.kt1 && a.kt1 <= a.k / 16 && a.n < (1ull << 31) && a.k < (1ull << 31) &&
                  (a.n / 8) * a.k < (1ull << 40) && (a.kt1 - a.kt0 + kTK - 1) / kTK < 65536 && a.src && a.out &&
                  !(a.perm && a.source == 1);
  return ok ? Int4Status::kSuccess : Int4Status::kInvalidProblem;
}

Int4Status MarlinRepackKernel::can_implement(const MarlinScalesArgs& a) {
  const bool ok = a.in && a.out && (a.elem_bytes == 2 || a.elem_bytes == 4) && a.n % 64 == 0 && a.n > 0 &&
                  a.n < (1ull << 31) && a.rows * a.n < (1ull << 40);
  return ok ? Int4Status::kSuccess : Int4Status::kInvalidProblem;
}

Int4Status MarlinRepackKernel::can_implement(const MarlinZerosArgs& a) {
  const bool ok = a.source >= 0 && a.source <= 2 && a.zeros && a.out && a.bad && a.n % 64 == 0 && a.n > 0 &&
                  a.n < (1ull << 31) && a.groups * a.n < (1ull << 40);
  return ok ? Int4Status::kSuccess : Int4Status::kInvalidProblem;
}

Int4Status MarlinRepackKernel::run(const MarlinRepackArgs& a, cudaStream_t stream) {
  if (can_implement(a) != Int4Status::kSuccess) return Int4Status::kInvalidProblem;
  const RepackParams p{a.source,
                       static_cast<uint32_t>(a.n),
                       static_cast<uint32_t>(a.k),
                       static_cast<uint32_t>(a.kt0),
                       static_cast<uint32_t>(a.kt1),
                       a.src,
                       a.perm,
                       a.out};
  const dim3 grid(static_cast<unsigned>((a.n / 64 + kTN - 1) / kTN), static_cast<unsigned>((a.kt1 - a.kt0 + kTK - 1) / kTK));
  repack_kernel<<<grid, kThreads, 0, stream>>>(p);
  if (cudaError_t e = cudaGetLastError()) return fail(e);
  return Int4Status::kSuccess;
}

Int4Status MarlinRepackKernel::run(const MarlinScalesArgs& a, cudaStream_t stream) {
  if (can_implement(a) != Int4Status::kSuccess) return Int4Status::kInvalidProblem;
  const uint64_t total = a.rows * a.n;
  const bool grouped = a.group_size != -1 && static_cast<uint64_t>(a.group_size) < a.k;
  if (a.elem_bytes == 2)
    scales_kernel<uint16_t><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<const uint16_t*>(a.in), static_cast<uint16_t*>(a.out), total, static_cast<uint32_t>(a.n), grouped, a.inverse);
  else
    scales_kernel<uint32_t><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<const uint32_t*>(a.in), static_cast<uint32_t*>(a.out), total, static_cast<uint32_t>(a.n), grouped, a.inverse);
  if (cudaError_t e = cudaGetLastError()) return fail(e);
  return Int4Status::kSuccess;
}

Int4Status MarlinRepackKernel::run(const MarlinZerosArgs& a, cudaStream_t stream) {
  if (can_implement(a) != Int4Status::kSuccess) return Int4Status::kInvalidProblem;
  zeros_kernel<<<blocks_for(a.groups * (a.n / 8)), kThreads, 0, stream>>>(a);
  if (cudaError_t e = cudaGetLastError()) return fail(e);
  return Int4Status::kSuccess;
}

}  // namespace ckpt::cuda
