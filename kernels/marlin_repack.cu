// Marlin relayout kernels (the layout: lib/ops/marlin_layout.h).
//
// Weights without act-order (block_kernel): the work is blocks of 4 K-tiles x 8 N-tiles (64 K-rows
// x 512 columns), 16 KB of source codes and 16 KB of Marlin words each; persistent 256-thread
// CTAs (as many as the GPU keeps resident) walk the blocks b = blockIdx.x, + gridDim.x, ...
// 1. Load: the block's source is 1024 chunks of 4 consecutive words in the source's own layout
//    (GPTQ: 8 qweight rows x 128 chunks; AWQ: 64 rows x 16; compressed-tensors: 512 rows x 2), so
//    every thread issues 4 coalesced 16-byte loads per block. The loads of the CTA's next block
//    are issued before the current block's work, keeping 64 bytes per thread in flight throughout.
// 2. The chunks go to shared memory as G[8 rows of 8 K-values][512 columns], GPTQ's layout: GPTQ
//    chunks as they are (16-byte stores), compressed-tensors chunks as 4 words of one column
//    (transposed on the way), AWQ chunks to a staging copy first, from which each thread takes the
//    8 words of 8 consecutive K-rows and one AWQ word and transposes the 8 x 8 nibbles in registers
//    (three rounds of masked swaps) into 8 G words.
// 3. Marlin words: word (th, warp) of a 16 x 64 tile takes byte th % 4 of G[2kt][c], G[2kt+1][c],
//    G[2kt][c+8], G[2kt+1][c+8] (c = 16 warp + th / 4), low nibbles into nibbles 0..3 and high
//    nibbles into 4..7. A thread makes the 4 words th*4 .. th*4 + 3 (warp 0..3) and stores them
//    with one 16-byte store; a warp's 32 stores are one tile's 512 contiguous bytes.
// Budget: per 32 KB moved a CTA issues about 2 000 warp instructions (AWQ: 3 500 with its
// transpose), a few percent of an SM's issue rate at the copy's bandwidth; what must hold is the
// bytes in flight, 3 CTAs x 16 KB per SM, above the ~20 KB per SM that HBM3's latency asks for.
// Act-order (gather_kernel): each G word built from the 8 source words of its sorted K-rows, one
// block of 4 K-tiles x 2 N-tiles per CTA.
// Scales and zero points: one thread per output element / word.
#include <cstdint>

#include "marlin_repack.h"
#include "ops/int4_math.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;
__constant__ int kAwqNib[8] = {0, 4, 1, 5, 2, 6, 3, 7};   // column 8m + c sits in AWQ nibble kAwqNib[c]
__constant__ int kOrder8[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // Marlin zero points: nibble i of a word holds column kOrder8[i]

struct RepackParams {
  int source;
  uint32_t n, k, kt0, kt1;
  bool vec_src, vec_out;  // 16-byte accesses are aligned
  const uint32_t* src;
  const int32_t* perm;
  uint32_t* out;
};

__device__ __forceinline__ uint32_t nib(uint32_t w, uint32_t i) { return (w >> (4 * i)) & 15u; }

// The Marlin word of byte b of G words g0 = G[2kt][c], g1 = G[2kt+1][c], g2 = G[2kt][c+8],
// g3 = G[2kt+1][c+8]: low nibbles of the 4 bytes into nibbles 0..3, high nibbles into 4..7.
__device__ __forceinline__ uint32_t marlin_word(uint32_t g0, uint32_t g1, uint32_t g2, uint32_t g3, uint32_t b) {
  const uint32_t sel = b | (b + 4) << 4;
  const uint32_t x = __byte_perm(__byte_perm(g0, g1, sel), __byte_perm(g2, g3, sel), 0x5410);
  uint32_t l = x & 0x0F0F0F0Fu, h = (x >> 4) & 0x0F0F0F0Fu;
  l = (l | l >> 4) & 0x00FF00FFu;
  h = (h | h >> 4) & 0x00FF00FFu;
  l = (l | l >> 8) & 0xFFFFu;
  h = (h | h >> 8) & 0xFFFFu;
  return l | h << 16;
}

// Blocks of 4 K-tiles x 8 N-tiles (see the top of the file).
constexpr int kBK = 4, kBN = 8;
constexpr int kBCols = 64 * kBN;          // 512
constexpr int kGRows = 2 * kBK;           // 8
constexpr int kGStride = kBCols + 4;      // +4: rows 2kt of a warp's lanes fall in distinct banks
constexpr int kAwqRows = 16 * kBK;        // 64
constexpr int kAwqWords = kBCols / 8;     // 64
constexpr int kAwqStride = kAwqWords + 4;
constexpr int kChunks = kBK * kBN * 512 / 16;  // 16-byte chunks of source per block: 1024
static_assert(kChunks % kThreads == 0, "whole chunks per thread");
constexpr int kChunksPerThread = kChunks / kThreads;  // 4

struct BlockAt {
  uint32_t kt_base, nt_base;
};
__device__ __forceinline__ BlockAt block_at(const RepackParams& p, uint32_t blk, uint32_t n_blocks) {
  return {p.kt0 + blk / n_blocks * kBK, blk % n_blocks * kBN};
}

// Chunk i of a block: its source word offset and how many of its 4 words exist (0 or 4, or for a
// compressed-tensors chunk straddling kt1, 2).
struct Chunk {
  uint64_t at;
  uint32_t words;
};
__device__ __forceinline__ Chunk chunk_of(const RepackParams& p, BlockAt b, uint32_t i) {
  const uint32_t n_tiles = p.n / 64;
  if (p.source == 0) {  // GPTQ: G-row i / 128, columns 4 (i % 128) ..
    const uint32_t j = i / 128, c = 4 * (i % 128);
    const bool ok = b.kt_base + j / 2 < p.kt1 && b.nt_base + c / 64 < n_tiles;
    return {static_cast<uint64_t>(2 * b.kt_base + j) * p.n + 64 * b.nt_base + c, ok ? 4u : 0u};
  }
  if (p.source == 1) {  // AWQ: K-row i / 16, words 4 (i % 16) ..
    const uint32_t r = i / 16, w = 4 * (i % 16);
    const bool ok = b.kt_base + r / 16 < p.kt1 && b.nt_base + w / 8 < n_tiles;
    return {static_cast<uint64_t>(16 * b.kt_base + r) * (p.n / 8) + 8 * b.nt_base + w, ok ? 4u : 0u};
  }
  // compressed-tensors: column i / 2, words 2 kt_base + 4 (i % 2) .. (K-tiles kt_base + 2 (i % 2), +1)
  const uint32_t c = i / 2, h = i % 2;
  const uint32_t kt = b.kt_base + 2 * h;
  const uint32_t words = b.nt_base + c / 64 >= n_tiles || kt >= p.kt1 ? 0u : (kt + 1 < p.kt1 ? 4u : 2u);
  return {static_cast<uint64_t>(64 * b.nt_base + c) * (p.k / 8) + 2 * b.kt_base + 4 * h, words};
}

__device__ __forceinline__ void load_block(const RepackParams& p, uint32_t blk, uint32_t blocks, uint32_t n_blocks,
                                           uint4 v[kChunksPerThread]) {
  const BlockAt b = block_at(p, blk, n_blocks);
#pragma unroll
  for (int q = 0; q < kChunksPerThread; ++q) {
    v[q] = make_uint4(0, 0, 0, 0);
    if (blk >= blocks) continue;
    const Chunk ch = chunk_of(p, b, threadIdx.x + q * kThreads);
    const uint32_t* s = p.src + ch.at;
    if (ch.words == 4 && p.vec_src) {
      v[q] = *reinterpret_cast<const uint4*>(s);
    } else if (ch.words) {
      v[q].x = s[0];
      v[q].y = s[1];
      if (ch.words == 4) {
        v[q].z = s[2];
        v[q].w = s[3];
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads, 3) block_kernel(RepackParams p) {
  __shared__ __align__(16) uint32_t g[kGRows][kGStride];
  __shared__ __align__(16) uint32_t awq[kAwqRows][kAwqStride];
  const uint32_t n_blocks = (p.n / 64 + kBN - 1) / kBN;
  const uint32_t blocks = (p.kt1 - p.kt0 + kBK - 1) / kBK * n_blocks;
  const uint32_t t = threadIdx.x, lane = t % 32, warp = t / 32;
  uint4 v[kChunksPerThread];
  load_block(p, blockIdx.x, blocks, n_blocks, v);
  for (uint32_t blk = blockIdx.x; blk < blocks; blk += gridDim.x) {
    const BlockAt b = block_at(p, blk, n_blocks);
    // 2. Chunks into G (or the AWQ staging copy).
#pragma unroll
    for (int q = 0; q < kChunksPerThread; ++q) {
      const uint32_t i = t + q * kThreads;
      if (p.source == 0) {
        *reinterpret_cast<uint4*>(&g[i / 128][4 * (i % 128)]) = v[q];
      } else if (p.source == 1) {
        *reinterpret_cast<uint4*>(&awq[i / 16][4 * (i % 16)]) = v[q];
      } else {
        const uint32_t c = i / 2, j = 4 * (i % 2);
        g[j][c] = v[q].x;
        g[j + 1][c] = v[q].y;
        g[j + 2][c] = v[q].z;
        g[j + 3][c] = v[q].w;
      }
    }
    // The next block's loads, in flight during this block's work.
    load_block(p, blk + gridDim.x, blocks, n_blocks, v);
    __syncthreads();
    if (p.source == 1) {
      // (G row j, AWQ word w) for j = 0..7, w = 0..63: 8 K-rows x 8 columns.
#pragma unroll
      for (uint32_t s = t; s < kGRows * kAwqWords; s += kThreads) {
        const uint32_t j = s / kAwqWords, w = s % kAwqWords;
        uint32_t a[8];
#pragma unroll
        for (int r = 0; r < 8; ++r) a[r] = awq[8 * j + r][w];
        ops::int4_nibble_transpose8(a);  // a[i]: AWQ nibble i of the 8 K-rows = column 8 w + kOrder8[i]
        // Columns 8 w .. 8 w + 7 in order (column e is a[kAwqNib[e]]), as two 16-byte stores.
        *reinterpret_cast<uint4*>(&g[j][8 * w]) = make_uint4(a[0], a[4], a[1], a[5]);
        *reinterpret_cast<uint4*>(&g[j][8 * w + 4]) = make_uint4(a[2], a[6], a[3], a[7]);
      }
      __syncthreads();
    }
    // 3. Marlin words: warp w takes N-tile w of the block, K-tile q of each of its 4 stores.
    const uint32_t th = lane, bsel = th % 4, ntl = warp;
    const uint32_t n_tiles = p.n / 64;
#pragma unroll
    for (uint32_t ktl = 0; ktl < kBK; ++ktl) {
      const uint32_t kt = b.kt_base + ktl;
      if (kt >= p.kt1 || b.nt_base + ntl >= n_tiles) continue;
      uint32_t w4[4];
#pragma unroll
      for (uint32_t wp = 0; wp < 4; ++wp) {
        const uint32_t c = 64 * ntl + 16 * wp + th / 4;
        w4[wp] = marlin_word(g[2 * ktl][c], g[2 * ktl + 1][c], g[2 * ktl][c + 8], g[2 * ktl + 1][c + 8], bsel);
      }
      uint32_t* dst = p.out + static_cast<uint64_t>(kt - p.kt0) * 2 * p.n + 128 * (b.nt_base + ntl) + 4 * th;
      if (p.vec_out) {
        *reinterpret_cast<uint4*>(dst) = make_uint4(w4[0], w4[1], w4[2], w4[3]);
      } else {
        for (int i = 0; i < 4; ++i) dst[i] = w4[i];
      }
    }
    __syncthreads();  // G and the staging copy are rewritten by the next block
  }
}

// Act-order: 4 K-tiles x 2 N-tiles per CTA (64 K-rows x 128 columns), each G word gathered from the
// 8 source words of its sorted K-rows, then the Marlin words as in block_kernel. The K-blocks are
// the grid's fast dimension: the CTAs running at once share a few 128-column stripes of the
// source, which stay in L2 while the 8 destinations of each source word are gathered, instead of
// every stripe at once (the whole source, re-read from DRAM up to 8 times).
constexpr int kPK = 4, kPN = 2, kPCols = 64 * kPN, kPGRows = 2 * kPK;
__global__ void __launch_bounds__(kThreads) gather_kernel(RepackParams p) {
  __shared__ uint32_t g[kPGRows][kPCols + 1];
  const uint32_t kt_base = p.kt0 + blockIdx.x * kPK, nt_base = blockIdx.y * kPN;
  const uint32_t n_tiles = p.n / 64, kw = p.k / 8, c_base = 64 * nt_base;
  const uint32_t t = threadIdx.x;
  for (uint32_t idx = t; idx < kPGRows * kPCols; idx += kThreads) {
    const uint32_t j = idx / kPCols, c = idx % kPCols;
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
  __syncthreads();
  for (uint32_t idx = t; idx < kPK * kPN * 128; idx += kThreads) {
    const uint32_t ktl = idx / (kPN * 128), rest = idx % (kPN * 128);
    const uint32_t ntl = rest / 128, w = rest % 128;
    const uint32_t kt = kt_base + ktl;
    if (kt >= p.kt1 || nt_base + ntl >= n_tiles) continue;
    const uint32_t th = w / 4, warp = w % 4;
    const uint32_t c = 64 * ntl + 16 * warp + th / 4;
    p.out[static_cast<uint64_t>(kt - p.kt0) * 2 * p.n + 128 * (nt_base + ntl) + w] =
        marlin_word(g[2 * ktl][c], g[2 * ktl + 1][c], g[2 * ktl][c + 8], g[2 * ktl + 1][c + 8], th % 4);
  }
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
                  (a.n / 8) * a.k < (1ull << 40) && (!a.perm || (a.n / 64 + kPN - 1) / kPN < 65536) && a.src && a.out &&
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
  RepackParams p{a.source,
                 static_cast<uint32_t>(a.n),
                 static_cast<uint32_t>(a.k),
                 static_cast<uint32_t>(a.kt0),
                 static_cast<uint32_t>(a.kt1),
                 false,
                 false,
                 a.src,
                 a.perm,
                 a.out};
  if (a.perm) {
    const dim3 grid(static_cast<unsigned>((a.kt1 - a.kt0 + kPK - 1) / kPK), static_cast<unsigned>((a.n / 64 + kPN - 1) / kPN));
    gather_kernel<<<grid, kThreads, 0, stream>>>(p);
    if (cudaError_t e = cudaGetLastError()) return fail(e);
    return Int4Status::kSuccess;
  }
  // Chunks start on a multiple of 4 words when the rows do (GPTQ: N % 64; AWQ: N / 8 % 8;
  // compressed-tensors: K / 8 % 4 and an even first K-tile) and the arrays are 16-byte aligned.
  p.vec_src = reinterpret_cast<uintptr_t>(a.src) % 16 == 0 && (a.source != 2 || (a.k % 32 == 0 && a.kt0 % 2 == 0));
  p.vec_out = reinterpret_cast<uintptr_t>(a.out) % 16 == 0;
  const uint64_t blocks = (a.kt1 - a.kt0 + kBK - 1) / kBK * ((a.n / 64 + kBN - 1) / kBN);
  unsigned grid = 0;
  if (cudaError_t e = persistent_grid(reinterpret_cast<const void*>(block_kernel), kThreads, blocks, a.max_ctas, &grid))
    return fail(e);
  block_kernel<<<grid, kThreads, 0, stream>>>(p);
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
