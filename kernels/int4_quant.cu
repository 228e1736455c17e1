// INT4 RTN quantization kernels: the same bytes as lib/ops/int4_quant.h's reference, with the
// per-group and per-element math taken from lib/ops/int4_math.h (host/device functions), so the
// two cannot drift apart.
//
// The work is warp tiles of 32 rows x 128 columns of the stripe (8 KB of BF16), one row a lane,
// walked by persistent warps (4 independent warps a CTA, as many CTAs as the GPU keeps resident:
// three an SM for 16-bit inputs, bounded by shared memory) in the order t = w, w + W, ... for
// global warp w of W:
//
//     columns 0 ......................... 127
//   row  0  [ lane 0: 16 words of 8 columns, its groups whole ]
//   row  1  [ lane 1 ]
//    ...
//   row 31  [ lane 31 ]
//
// Why this shape (the previous design, 64 x 128 tiles with 16 lanes a row, ran at 0.42-0.56 of a
// device copy; Nsight Compute found it latency-bound at 35 % occupancy with 78 registers a thread,
// its group ranges in shuffles and slots, 1.6x the L2 sectors it needed):
// 1. Load: cp.async copies (kernels/cp_async.cuh) move the tile into a per-warp ring of shared
//    memory, 16 bytes a lane in row order (a warp instruction covers 512 consecutive bytes of
//    BF16 rows), without registers: each warp keeps the next tile's 8 KB in flight while it
//    computes the current one (12 warps an SM: ~100 KB in flight, several times what HBM3's
//    latency asks for), and the registers stay free for the math.
// 2. Group parameters (groups of 8..128 columns dividing 128): a lane owns every group of its row
//    in the tile, so the range (amax as float32 magnitude bits, so a NaN/Inf is the largest; lo
//    and hi when asymmetric) is a loop over the lane's own chunks — no shuffles, no slots — and
//    the parameters (int4_math.h: the division, the rounding to the scale type, the reciprocal)
//    are computed once per group by the lane that uses them. Wider groups (group_size -1, or
//    sizes not dividing 128) get their parameters from a first kernel (one CTA per group, a block
//    reduction) through the workspace.
// 3. Codes: clamp(rint(RN(x / S)) + z, 0, 15), as torch.round(x / scale) computes them, without
//    a division per element: seven full-rate instructions and no conversion-unit ones (floorf,
//    float->int) — see code_word — so that the issue budget below is never the limit.
//    With r = RN(1/S) (relative error <= 2^-24) and M = 1.5 * 2^23 + z:
//      y  = RN(x*r + M)          one FFMA; for |x*r| <= 2^21 the sum lies in [2^23, 2^24), where
//                                the float grid is the integers, so y = M + rint(x*r) exactly;
//      m  = y - M                exact (both integers below 2^24): m = rint(x*r);
//      d  = RN(x*r - m)          one FFMA: the distance from x*r to its integer, |d| <= 1/2.
//    If |d| <= 1/2 - 2^-19 the reference's code is m. Proof: with t = x / S,
//    |x*r - t| <= |t| 2^-24 and |RN(t) - t| <= |t| 2^-24, so |RN(t) - m| <= 1/2 - 2^-19 + 2^-25 +
//    |t| 2^-23 < 1/2 whenever |t| < 15.75, and then rint(RN(t)) = m. For |t| >= 15.75 both m and
//    rint(RN(t)) are at least 16 in size with the same sign, so both clamp to the same code (z is
//    in [0, 15]); likewise when |x*r| > 2^21 and y is no longer exact. Otherwise (x*r within
//    2^-19 of a half-integer, exact ties included: about 4 elements in a million of random data;
//    or r = Inf for F32 scales below 2^-126, where d is NaN) the 8 elements of the thread divide
//    as the reference does.
//    The clamp is two FMNMX on y against M - z and M - z + 15 (bits of M are 0x4B40'0000 plus the
//    code, so the low nibble of the clamped float IS the code), and the 8 codes are packed by
//    adding the clamped floats' bits shifted by 4i and subtracting the known sum of the shifted
//    0x4B40'0000 parts (kMagicSum): one LEA per element instead of mask, shift and or.
// 4. Stores in the requested layout (the format's own, or compressed-tensors' for an engine's
//    cache: Int4QuantArgs::layout). GPTQ's qweight [K/8, N] takes a word per lane per column
//    word: the warp's 32 rows are 32 consecutive words. The others leave through shared memory
//    (each lane's words overwrite the start of its own row in the stage): compressed-tensors
//    rows as they are (a row's 16 words by 4 lanes, 16-byte stores); AWQ's N-packed words come
//    from an 8 x 8 nibble transpose of 8 rows' words in registers (int4_nibble_transpose8: 72
//    instructions for 8 words instead of 8 nibble extractions per word). Scales from the lane of
//    their row; a zero word ORs the nibbles of its octet's 8 lanes (three shuffles).
// Issue budget: an H100 issues 132 SMs x 4 x ~1.75 GHz = 9.2e11 warp instructions per second;
// 70% of its ~2.9 TB/s copy at 2.53 bytes moved per BF16 element is 8.1e11 elements per second,
// so a thread may spend ~36 instructions per element. The codes take ~10 (step 3), the range ~1.5
// (16-bit inputs two at a time), the shared-memory reads and the stores ~1; a group's parameters
// (~60 instructions: two IEEE divisions, the scale type's rounding, a reciprocal) cost ~0.5 per
// element at g128, computed once per group by its own lane (step 2).
// Problems (NaN/Inf, a scale overflowing its dtype) go to one 64-bit atomicMin of their
// row-major position, so the first one in the CPU's order is reported.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cp_async.cuh"
#include "gpu_info.h"
#include "int4_quant.h"
#include "ops/int4_math.h"

namespace ckpt::cuda {

namespace {

using namespace ckpt::ops;

constexpr int kThreads = 256;   // the wide-group kernels
constexpr int kWarps = 4;       // the tile kernel: 4 independent warps a CTA
constexpr int kTileThreads = 32 * kWarps;
constexpr int kTileRows = 32;   // a warp tile: one row a lane
constexpr int kTileCols = 128;
constexpr int kWordsPerRow = kTileCols / 8;  // 16
constexpr unsigned kFull = 0xFFFFFFFFu;
__constant__ int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // AWQ: nibble i holds column 8m + kOrder[i]

// Kernel arguments (the host's Int4QuantArgs checked and narrowed).
struct Params {
  int format, layout, scale_type, zero_offset;  // format: the numbers (all-zero groups); layout: the arrays
  bool symmetric;
  uint32_t n, k, group, groups;  // groups per row
  uint32_t row0, rows;
  bool vec;  // the weights' 16-byte stores are aligned (step 4, compressed-tensors and GPTQ layouts)
  const uint8_t* in;
  uint32_t* weights;
  uint8_t* scales;
  uint32_t* zeros;
  unsigned long long* issue;  // min over (position << 1 | overflow)
  double* partials;           // [CTAs][3]
  float2* given;              // [rows][groups] (scale, zero) from the wide-group kernel, or null
};

__device__ __forceinline__ void report(const Params& p, uint32_t lr, uint32_t col, bool overflow) {
  const unsigned long long pos = static_cast<unsigned long long>(p.row0 + lr) * p.k + col;
  atomicMin(p.issue, (pos << 1) | (overflow ? 1ull : 0ull));
}

// 8 consecutive elements: their raw 16 or 32 bytes, then widened to float32 (exactly).
template <int InType>
struct Raw8 {
  uint4 v[InType == 2 ? 2 : 1];
};

template <int InType>
__device__ __forceinline__ Raw8<InType> load_raw8(const uint8_t* src) {
  Raw8<InType> r;
  r.v[0] = *reinterpret_cast<const uint4*>(src);
  if (InType == 2) r.v[InType == 2 ? 1 : 0] = *reinterpret_cast<const uint4*>(src + 16);
  return r;
}

template <int InType>
__device__ __forceinline__ void widen8(const Raw8<InType>& r, float x[8]) {
  if (InType == 2) {
    const uint4 a = r.v[0], b = r.v[InType == 2 ? 1 : 0];
    const uint32_t w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    for (int i = 0; i < 8; ++i) x[i] = __uint_as_float(w[i]);
  } else {
    const uint32_t w[4] = {r.v[0].x, r.v[0].y, r.v[0].z, r.v[0].w};
    for (int i = 0; i < 4; ++i) {
      const uint16_t lo = static_cast<uint16_t>(w[i] & 0xFFFF), hi = static_cast<uint16_t>(w[i] >> 16);
      if (InType == 0) {
        x[2 * i] = __uint_as_float(static_cast<uint32_t>(lo) << 16);
        x[2 * i + 1] = __uint_as_float(static_cast<uint32_t>(hi) << 16);
      } else {
        x[2 * i] = __half2float(__ushort_as_half(lo));  // exact, as ops::f16_to_f32
        x[2 * i + 1] = __half2float(__ushort_as_half(hi));
      }
    }
  }
}

// lo = min(0, x), hi = max(0, x) over 8 16-bit values in 4 words, with Pair = __nv_bfloat162 or
// __half2 (HMNMX2 on both halves at once). The accumulators start at +0: the zero bit pattern.
template <typename Pair>
__device__ __forceinline__ void packed_lo_hi(const uint32_t w[4], float& lo, float& hi) {
  const uint32_t zero_bits = 0;
  Pair l2 = *reinterpret_cast<const Pair*>(&zero_bits), h2 = l2;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const Pair v = *reinterpret_cast<const Pair*>(&w[i]);
    l2 = __hmin2(l2, v);
    h2 = __hmax2(h2, v);
  }
  lo = fminf(__low2float(l2), __high2float(l2));
  hi = fmaxf(__low2float(h2), __high2float(h2));
}

// The range of 8 elements: mb = the float32 bits of max |x| (a NaN/Inf sorts above every finite
// value), and for asymmetric groups lo = min(0, x), hi = max(0, x). 16-bit inputs work on the raw
// words two elements at a time (VIMNMX.U16x2 on the magnitude bits, HMNMX2 for lo/hi, which like
// fminf/fmaxf return the other operand of a NaN): half the instructions of the float32 form.
template <int InType, bool kSym>
__device__ __forceinline__ void range8(const Raw8<InType>& r, const float x[8], uint32_t& mb, float& lo, float& hi) {
  lo = 0.0f;
  hi = 0.0f;
  if (InType == 2) {
    mb = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      mb = max(mb, __float_as_uint(x[i]) & 0x7FFFFFFFu);
      if (!kSym) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
      }
    }
    return;
  }
  const uint32_t w[4] = {r.v[0].x, r.v[0].y, r.v[0].z, r.v[0].w};
  uint32_t m2 = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) m2 = __vmaxu2(m2, w[i] & 0x7FFF7FFFu);
  const uint32_t m16 = max(m2 & 0xFFFFu, m2 >> 16);
  mb = InType == 0 ? m16 << 16 : __float_as_uint(__half2float(__ushort_as_half(static_cast<uint16_t>(m16))));
  if (kSym) return;
  packed_lo_hi<std::conditional_t<InType == 0, __nv_bfloat162, __half2>>(w, lo, hi);
}

// The group's parameters from its range (int4_group_params of lib/ops, on the device).
struct Group {
  float scale, rinv;
  uint32_t zero;
  bool overflow;
};
__device__ __forceinline__ Group group_params(const Params& p, float amax, float lo, float hi) {
  Group g;
  g.overflow = false;
  if (p.symmetric ? amax == 0.0f : hi == lo) {
    g.scale = int4_zero_group_scale(p.format, p.scale_type);
    g.zero = int4_zero_group_zero(p.format, p.symmetric);
  } else {
    g.scale = p.symmetric ? int4_sym_scale(amax, p.scale_type) : int4_asym_scale(lo, hi, p.scale_type);
    g.overflow = !(g.scale < 3.4e38f);
    g.zero = p.symmetric ? 8u : (g.overflow ? 0u : int4_asym_zero(lo, g.scale));
  }
  g.rinv = __frcp_rn(g.scale);
  return g;
}

// Step 3: the code word of 8 elements (nibble i from x[i]), and each code where stats need it.
constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: the float grid is the integers from 2^23 to 2^24
constexpr float kBand = 0.5f - 0x1p-19f;
constexpr uint32_t magic_sum() {
  uint32_t s = 0;
  for (int i = 0; i < 8; ++i) s += 0x4B400000u << (4 * i);  // bits of kMagic, shifted as nibble i
  return s;
}
constexpr uint32_t kMagicSum = magic_sum();

// The reference's code of one element by division: the rare path (see step 3).
__device__ __noinline__ float exact_code_float(float x, float scale, float zero) {
  return rintf(__fdiv_rn(x, scale)) + zero;  // exact below 2^24; the clamp takes care beyond
}

__device__ __forceinline__ uint32_t code_word(const float x[8], const Group& g, uint32_t codes[8]) {
  const float m0 = kMagic + static_cast<float>(g.zero);  // M above: z folded in
  float y[8], dmax = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    y[i] = fmaf(x[i], g.rinv, m0);
    const float m = y[i] - m0;
    dmax = fmaxf(dmax, fabsf(fmaf(x[i], g.rinv, -m)));
  }
  if (!(dmax <= kBand) || isinf(g.rinv)) {  // fmaxf drops a NaN d, so r = Inf is asked directly
#pragma unroll
    for (int i = 0; i < 8; ++i) y[i] = exact_code_float(x[i], g.scale, static_cast<float>(g.zero)) + kMagic;
  }
  uint32_t w = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t b = __float_as_uint(fminf(fmaxf(y[i], kMagic), kMagic + 15.0f));  // NaN -> kMagic
    w += b << (4 * i);
    codes[i] = b & 15u;
  }
  return w - kMagicSum;
}

__device__ __forceinline__ void store_scale(const Params& p, uint32_t grow, uint32_t gi, float s) {
  const uint64_t at = p.layout == kInt4Ct ? static_cast<uint64_t>(grow) * p.groups + gi : static_cast<uint64_t>(gi) * p.n + grow;
  if (p.scale_type == kInt4ScaleF32) reinterpret_cast<float*>(p.scales)[at] = s;
  else reinterpret_cast<uint16_t*>(p.scales)[at] = p.scale_type == kInt4ScaleF16 ? f32_to_f16(s) : f32_to_bf16(s);
}

// A lane's part of the zero word of its 8-row octet (i = its row % 8, `row_exists`: the row is
// below N), and the word's index. store_zero_word (wide groups) ORs eight of them in a thread; the
// tile kernel ORs them across the octet's eight lanes.
__device__ __forceinline__ uint32_t zero_nibble(const Params& p, uint32_t z, uint32_t i, bool row_exists) {
  if (p.layout == kInt4Gptq) return ((z - static_cast<uint32_t>(p.zero_offset)) & 15u) << (4 * i);
  if (p.layout == kInt4Awq) return z << (4 * int4_awq_nibble(i));
  return row_exists ? z << (4 * i) : 0u;  // compressed-tensors pads rows past N with 0
}
__device__ __forceinline__ uint64_t zero_word_at(const Params& p, uint32_t grow8, uint32_t gi) {
  return p.layout == kInt4Ct ? static_cast<uint64_t>(grow8 / 8) * p.groups + gi
                             : static_cast<uint64_t>(gi) * (p.n / 8) + grow8 / 8;
}

// The zero word of rows grow8..grow8+7 (grow8 % 8 == 0) for group gi; z[i] of row grow8 + i.
__device__ __forceinline__ void store_zero_word(const Params& p, uint32_t grow8, uint32_t gi, const uint32_t z[8]) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < 8; ++i) w |= zero_nibble(p, z[i], i, grow8 + i < p.n);
  p.zeros[zero_word_at(p, grow8, gi)] = w;
}

// Step 1's ring (see the top of the file): per warp kStages tiles of 32 rows, each row's 128
// elements followed by 16 bytes of padding, so that row r starts 16 r bytes past a multiple of
// 128: the 8 lanes of a quarter-warp reading one 16-byte chunk of 8 rows hit 8 distinct bank
// quads. A lane's code words overwrite the start of its own row as they are made: word j lands in
// bytes 4j..4j+3, inside chunks (16 bytes from 16j, F32 32 from 32j) the lane has read by then,
// so AWQ's transpose and compressed-tensors' row stores read them back from the stage, which
// costs no more shared memory.
#ifndef CKPT_INT4_TILE_STAGES
#define CKPT_INT4_TILE_STAGES 2
#endif
template <int InType>
struct TileShape {
  static constexpr int kEsize = InType == 2 ? 4 : 2;
  static constexpr int kChunks = kTileCols * kEsize / 16;  // 16-byte chunks of a tile row: 16, F32 32
  static constexpr int kRowBytes = kChunks * 16 + 16;
  static constexpr int kStages = CKPT_INT4_TILE_STAGES;
  static constexpr int kStageBytes = kTileRows * kRowBytes;
  static constexpr int kWarpBytes = kStages * kStageBytes;
  static constexpr int kSmemBytes = kWarps * kWarpBytes;  // 2 stages: BF16/F16 69,632 (three CTAs an SM), F32 135,168
};

// The 8 elements of word j of a lane's tile row (16 or 32 bytes of shared memory).
template <int InType>
__device__ __forceinline__ Raw8<InType> chunk8(const uint8_t* row, uint32_t j) {
  return load_raw8<InType>(row + j * 8 * TileShape<InType>::kEsize);
}

// Persistent warps (global warp w of W) walk the tiles t = w, w + W, ...; each keeps kStages - 1
// tiles' copies in flight while it computes one. kGiven: parameters from p.given (wide groups).
template <int InType, bool kGiven, bool kStats, bool kSym>
__global__ void __launch_bounds__(kTileThreads) tile_kernel(Params p) {
  using S = TileShape<InType>;
  extern __shared__ __align__(16) uint8_t smem[];
  const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  uint8_t* ring = smem + warp * S::kWarpBytes;
  const uint32_t col_tiles = (p.k + kTileCols - 1) / kTileCols;
  const uint32_t tiles = col_tiles * ((p.rows + kTileRows - 1) / kTileRows);
  const uint32_t step = gridDim.x * kWarps;
  const uint32_t first = blockIdx.x * kWarps + warp;

  // Step 1: the copies of `tile` into ring stage `stage`, lane by lane 16-byte chunks in row
  // order (a warp instruction covers 512 consecutive bytes of BF16 rows: whole sectors); rows past
  // the stripe and columns past K read as zeros. A tile past the last commits an empty group, so
  // the wait below counts the same at every step.
  auto load = [&](uint32_t tile, int stage) {
    if (tile < tiles) {
      const uint32_t lr0 = tile / col_tiles * kTileRows, col0 = tile % col_tiles * kTileCols;
      uint8_t* dst = ring + stage * S::kStageBytes;
#pragma unroll
      for (int i = 0; i < S::kChunks; ++i) {
        const uint32_t idx = i * 32 + lane, r = idx / S::kChunks, c = idx % S::kChunks;
        const uint32_t col = col0 + c * (16 / S::kEsize);
        const bool valid = lr0 + r < p.rows && col < p.k;
        const uint8_t* src = p.in + (valid ? (static_cast<uint64_t>(lr0 + r) * p.k + col) * S::kEsize : 0);
        cp_async16_or_zero(dst + r * S::kRowBytes + c * 16, src, valid);
      }
    }
    cp_async_commit();
  };

#pragma unroll
  for (int s = 0; s < S::kStages - 1; ++s) load(first + s * step, s);
  int stage = 0;
  for (uint32_t tile = first; tile < tiles; tile += step) {
    load(tile + (S::kStages - 1) * step, (stage + S::kStages - 1) % S::kStages);
    cp_async_wait<S::kStages - 1>();  // this tile's group has landed
    __syncwarp();                     // and every lane's copies of it are visible
    const uint32_t lr0 = tile / col_tiles * kTileRows, col0 = tile % col_tiles * kTileCols;
    const uint32_t lr = lr0 + lane, grow = p.row0 + lr;
    const bool row_valid = lr < p.rows;
    const uint32_t nwords = min(static_cast<uint32_t>(kWordsPerRow), (p.k - col0) / 8);  // K % 8 == 0
    const uint32_t gw = kGiven ? 1 : p.group / 8;  // words per group
    uint8_t* tile_smem = ring + stage * S::kStageBytes;
    const uint8_t* row = tile_smem + lane * S::kRowBytes;
    // Word c of tile row r, once made (see TileShape).
    auto word = [&](uint32_t r, uint32_t c) -> uint32_t& {
      return reinterpret_cast<uint32_t*>(tile_smem + r * S::kRowBytes)[c];
    };
    float sq_err = 0, sq = 0, max_err = 0;
    for (uint32_t g0 = 0; g0 < nwords; g0 += gw) {  // warp-uniform: every lane walks the same groups
      const uint32_t gi = (col0 + 8 * g0) / p.group;
      Group g{1.0f, 1.0f, 0, false};  // a group holding a NaN/Inf (reported below) or a row past the stripe
      if (kGiven) {
        if (row_valid) {
          const float2 v = p.given[static_cast<uint64_t>(lr) * p.groups + gi];
          g.scale = v.x;
          g.zero = static_cast<uint32_t>(v.y);
          g.rinv = __frcp_rn(g.scale);
        }
      } else {
        // Step 2: the group's range and parameters, all in this lane.
        uint32_t mb = 0;
        float lo = 0.0f, hi = 0.0f;
#pragma unroll 4
        for (uint32_t j = g0; j < g0 + gw; ++j) {
          const Raw8<InType> r = chunk8<InType>(row, j);
          float x[8], l, h;
          uint32_t m;
          widen8<InType>(r, x);
          range8<InType, kSym>(r, x, m, l, h);
          mb = max(mb, m);
          lo = fminf(lo, l);
          hi = fmaxf(hi, h);
          if (m >= 0x7F800000u && row_valid)  // the chunk's first NaN/Inf; the minimum position wins
            for (int i = 0; i < 8; ++i)
              if (!isfinite(x[i])) {
                report(p, lr, col0 + 8 * j + i, false);
                break;
              }
        }
        if (mb < 0x7F800000u) {
          g = group_params(p, __uint_as_float(mb), lo, hi);
          if (g.overflow) {
            if (row_valid) report(p, lr, col0 + 8 * g0, true);
            g.scale = 1.0f;
            g.rinv = 1.0f;
          }
        }
        if (row_valid) store_scale(p, grow, gi, g.scale);
        if (p.zeros) {
          uint32_t zw = zero_nibble(p, g.zero, lane % 8, grow < p.n);
          zw |= __shfl_xor_sync(kFull, zw, 1);
          zw |= __shfl_xor_sync(kFull, zw, 2);
          zw |= __shfl_xor_sync(kFull, zw, 4);
          if (lane % 8 == 0 && row_valid) p.zeros[zero_word_at(p, grow, gi)] = zw;
        }
      }
      // Step 3: the group's code words.
#pragma unroll 4
      for (uint32_t j = g0; j < g0 + gw; ++j) {
        const Raw8<InType> r = chunk8<InType>(row, j);
        float x[8];
        widen8<InType>(r, x);  // rows past the stripe: zeros
        uint32_t codes[8];
        const uint32_t w = code_word(x, g, codes);
        if (p.layout == kInt4Gptq) {
          // qweight row col0 / 8 + j: the warp's 32 rows are 32 consecutive words.
          if (row_valid) p.weights[static_cast<uint64_t>(col0 / 8 + j) * p.n + grow] = w;
        } else {
          word(lane, j) = w;  // chunk j, read above, is at or past byte 4 j
        }
        if (kStats && row_valid) {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const float e = x[i] - int4_dequant(codes[i], g.zero, g.scale);
            sq_err += e * e;
            sq += x[i] * x[i];
            max_err = fmaxf(max_err, fabsf(e));
          }
        }
      }
    }
    __syncwarp();  // every lane's words are in the stage

    // Step 4: the words that leave through shared memory.
    if (p.layout == kInt4Ct) {
      // Row r's words 4q .. 4q + 3 (16 bytes) from lane 4 (r % 8) + q: a warp store writes 8 whole rows.
      const uint32_t q = lane % 4;
#pragma unroll
      for (uint32_t pass = 0; pass < kTileRows / 8; ++pass) {
        const uint32_t r = 8 * pass + lane / 4, c4 = 4 * q;
        if (lr0 + r >= p.rows || c4 >= nwords) continue;
        uint32_t* dst = p.weights + static_cast<uint64_t>(p.row0 + lr0 + r) * (p.k / 8) + col0 / 8 + c4;
        if (p.vec && c4 + 3 < nwords) {
          *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(&word(r, c4));
        } else {
          for (uint32_t i = 0; i < 4 && c4 + i < nwords; ++i) dst[i] = word(r, c4 + i);
        }
      }
    } else if (p.layout == kInt4Awq) {
      // Lane (c8, m) takes the words of rows 8 m + kOrder[i] at column word c8 and transposes their
      // nibbles: word e then holds qweight (col0 + 8 c8 + e, m); a warp store of one e writes 8
      // runs of the 4 consecutive words of the tile's 4 octets. (AWQ stripes hold whole octets.)
      const uint32_t m = lane % 4;
#pragma unroll
      for (uint32_t pass = 0; pass < 2; ++pass) {
        const uint32_t c8w = 8 * pass + lane / 4;
        if (lr0 + 8 * m >= p.rows || c8w >= nwords) continue;
        uint32_t a[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) a[i] = word(8 * m + kOrder[i], c8w);
        int4_nibble_transpose8(a);
        uint32_t* dst = p.weights + static_cast<uint64_t>(col0 + 8 * c8w) * (p.n / 8) + (p.row0 + lr0) / 8 + m;
#pragma unroll
        for (int e = 0; e < 8; ++e) dst[static_cast<uint64_t>(e) * (p.n / 8)] = a[e];
      }
    }

    if (kStats) {  // per tile, in a fixed butterfly: the same sums at every grid
      double a = sq_err, b = sq, c = max_err;
      for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(kFull, a, o);
        b += __shfl_xor_sync(kFull, b, o);
        c = fmax(c, __shfl_xor_sync(kFull, c, o));
      }
      if (lane == 0) {
        double* out = p.partials + 3 * static_cast<uint64_t>(tile);
        out[0] = a;
        out[1] = b;
        out[2] = c;
      }
    }
    __syncwarp();  // the stage is refilled by the next step's copies
    stage = (stage + 1) % S::kStages;
  }
  cp_async_wait<0>();  // no copy (of a tile past the last: none are issued) outlives the warp
}

// Wide groups: one CTA per (row, group) reduces the group and stores its parameters.
template <int InType>
__global__ void __launch_bounds__(kThreads) wide_params_kernel(Params p) {
  constexpr int esize = InType == 2 ? 4 : 2;
  __shared__ uint32_t smb[kThreads / 32];
  __shared__ float slo[kThreads / 32], shi[kThreads / 32];
  const uint32_t lr = blockIdx.y, gi = blockIdx.x;
  const uint8_t* row = p.in + (static_cast<uint64_t>(lr) * p.k + static_cast<uint64_t>(gi) * p.group) * esize;
  uint32_t mb = 0, bad = 0xFFFFFFFFu;
  float lo = 0.0f, hi = 0.0f;
  // Four loads issued before their math (64 bytes per thread in flight), in increasing columns so
  // that `bad` is the thread's first problem.
  constexpr uint32_t kStep = 8 * kThreads;
  for (uint32_t c0 = 8 * threadIdx.x; c0 < p.group; c0 += 4 * kStep) {
    Raw8<InType> raw[4];
#pragma unroll
    for (uint32_t u = 0; u < 4; ++u) {
      const uint32_t c = c0 + u * kStep;
      raw[u] = c < p.group ? load_raw8<InType>(row + static_cast<uint64_t>(c) * esize) : Raw8<InType>{};
    }
#pragma unroll
    for (uint32_t u = 0; u < 4; ++u) {
      const uint32_t c = c0 + u * kStep;
      if (c >= p.group) break;
      float x[8];
      widen8<InType>(raw[u], x);
      for (int i = 0; i < 8; ++i) {
        const uint32_t m = __float_as_uint(x[i]) & 0x7FFFFFFFu;
        if (m >= 0x7F800000u && bad == 0xFFFFFFFFu) bad = c + i;
        mb = max(mb, m);
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
      }
    }
  }
  if (bad != 0xFFFFFFFFu) report(p, lr, gi * p.group + bad, false);
  for (int o = 16; o > 0; o >>= 1) {
    mb = max(mb, __shfl_xor_sync(kFull, mb, o));
    lo = fminf(lo, __shfl_xor_sync(kFull, lo, o));
    hi = fmaxf(hi, __shfl_xor_sync(kFull, hi, o));
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    smb[warp] = mb;
    slo[warp] = lo;
    shi[warp] = hi;
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int i = 1; i < kThreads / 32; ++i) {
    mb = max(mb, smb[i]);
    lo = fminf(lo, slo[i]);
    hi = fmaxf(hi, shi[i]);
  }
  Group g{1.0f, 1.0f, 0, false};
  if (mb < 0x7F800000u) {
    g = group_params(p, __uint_as_float(mb), lo, hi);
    if (g.overflow) {
      report(p, lr, gi * p.group, true);
      g.scale = 1.0f;
    }
  }
  p.given[static_cast<uint64_t>(lr) * p.groups + gi] = make_float2(g.scale, static_cast<float>(g.zero));
}

// Wide groups: scales and zeros from the parameters, one thread per (8 rows, group).
__global__ void params_store_kernel(Params p) {
  const uint64_t idx = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t words = (static_cast<uint64_t>(p.rows) + 7) / 8 * p.groups;
  if (idx >= words) return;
  const uint32_t m = static_cast<uint32_t>(idx / p.groups), gi = static_cast<uint32_t>(idx % p.groups);
  uint32_t z[8];
  for (int i = 0; i < 8; ++i) {
    const uint32_t lr = 8 * m + i;
    z[i] = 0;
    if (lr < p.rows) {
      const float2 v = p.given[static_cast<uint64_t>(lr) * p.groups + gi];
      store_scale(p, p.row0 + lr, gi, v.x);
      z[i] = static_cast<uint32_t>(v.y);
    }
  }
  if (p.zeros) store_zero_word(p, p.row0 + 8 * m, gi, z);
}

__global__ void g_idx_kernel(int32_t* g_idx, uint32_t k, uint32_t group) {
  const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < k) g_idx[i] = static_cast<int32_t>(i / group);
}

int layout_of(const Int4QuantArgs& a) { return a.layout < 0 ? a.format : a.layout; }

bool tile_groups(const Int4QuantArgs& a) { return a.group <= kTileCols && kTileCols % a.group == 0; }

struct Layout {
  size_t partials, given, total;
};
uint64_t tile_count(const Int4QuantArgs& a) {
  return ((a.k + kTileCols - 1) / kTileCols) * ((a.rows + kTileRows - 1) / kTileRows);
}

Layout workspace_layout(const Int4QuantArgs& a) {
  Layout l;
  const uint64_t ctas = tile_count(a);
  l.partials = 256;
  l.given = l.partials + ((ctas * 3 * sizeof(double) + 255) / 256) * 256;
  l.total = l.given + (tile_groups(a) ? 0 : a.rows * (a.k / a.group) * sizeof(float2));
  return l;
}

template <int InType, typename Kernel>
cudaError_t launch_tiles(Kernel kernel, const Params& p, uint64_t tiles, uint32_t max_ctas, cudaStream_t s) {
  constexpr int smem = TileShape<InType>::kSmemBytes;  // above the 48 KB a kernel gets unasked
  if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)) return e;
  unsigned grid = 0;
  if (cudaError_t e = persistent_grid(reinterpret_cast<const void*>(kernel), kTileThreads, (tiles + kWarps - 1) / kWarps,
                                      max_ctas, &grid, smem))
    return e;
  kernel<<<grid, kTileThreads, smem, s>>>(p);
  return cudaGetLastError();
}

template <int InType, bool kSym>
cudaError_t launch(const Params& p, bool wide, bool stats, uint64_t tiles, uint32_t max_ctas, cudaStream_t s) {
  if (wide) {
    wide_params_kernel<InType><<<dim3(p.groups, p.rows), kThreads, 0, s>>>(p);
    if (cudaError_t e = cudaGetLastError()) return e;
    return stats ? launch_tiles<InType>(tile_kernel<InType, true, true, kSym>, p, tiles, max_ctas, s)
                 : launch_tiles<InType>(tile_kernel<InType, true, false, kSym>, p, tiles, max_ctas, s);
  }
  return stats ? launch_tiles<InType>(tile_kernel<InType, false, true, kSym>, p, tiles, max_ctas, s)
               : launch_tiles<InType>(tile_kernel<InType, false, false, kSym>, p, tiles, max_ctas, s);
}

template <int InType>
cudaError_t launch(const Params& p, bool wide, bool stats, uint64_t tiles, uint32_t max_ctas, cudaStream_t s) {
  return p.symmetric ? launch<InType, true>(p, wide, stats, tiles, max_ctas, s)
                     : launch<InType, false>(p, wide, stats, tiles, max_ctas, s);
}

}  // namespace

cudaError_t persistent_grid(const void* kernel, int threads, uint64_t work, uint32_t max_ctas, unsigned* grid,
                            size_t smem_bytes) {
  int per_sm = 0;
  if (cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem_bytes)) return e;
  uint64_t g = static_cast<uint64_t>(std::max(current_sm_count(), 1)) * static_cast<uint64_t>(std::max(per_sm, 1));
  if (max_ctas) g = std::min<uint64_t>(g, max_ctas);
  *grid = static_cast<unsigned>(std::max<uint64_t>(1, std::min(g, work)));
  return cudaSuccess;
}

const char* int4_status_name(Int4Status s) {
  switch (s) {
    case Int4Status::kSuccess: return "success";
    case Int4Status::kInvalidProblem: return "invalid problem";
    case Int4Status::kWorkspaceNull: return "workspace null";
    case Int4Status::kCudaError: return "CUDA error";
  }
  return "?";
}

Int4Status Int4QuantKernel::can_implement(const Int4QuantArgs& a) {
  const int layout = layout_of(a);
  const bool types = a.format >= 0 && a.format <= 2 && layout >= 0 && layout <= 2 && a.in_type >= 0 &&
                     a.in_type <= 2 && a.scale_type >= 0 && a.scale_type <= 2;
  const bool shape = a.n > 0 && a.k > 0 && a.k % 8 == 0 && a.group > 0 && a.group % 8 == 0 && a.k % a.group == 0 &&
                     a.row0 % 8 == 0 && a.row0 + a.rows <= a.n && a.rows > 0 &&
                     (a.rows % 8 == 0 || a.row0 + a.rows == a.n) && (layout == kInt4Ct || a.n % 8 == 0);
  const bool sizes = a.n < (1ull << 31) && a.k < (1ull << 31) && a.n * (a.k / 8) < (1ull << 40) &&
                     (tile_groups(a) || a.rows < 65536);
  const bool pointers = a.in && a.weights && a.scales && (a.zeros || (layout == kInt4Ct && a.symmetric)) &&
                        reinterpret_cast<uintptr_t>(a.in) % 16 == 0;
  return types && shape && sizes && pointers ? Int4Status::kSuccess : Int4Status::kInvalidProblem;
}

size_t Int4QuantKernel::get_workspace_size(const Int4QuantArgs& a) { return workspace_layout(a).total; }

Int4Status Int4QuantKernel::run(const Int4QuantArgs& a, void* workspace, cudaStream_t stream) {
  if (can_implement(a) != Int4Status::kSuccess) return Int4Status::kInvalidProblem;
  if (!workspace) return Int4Status::kWorkspaceNull;
  const Layout l = workspace_layout(a);
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  Params p;
  p.format = a.format;
  p.layout = layout_of(a);
  p.scale_type = a.scale_type;
  p.zero_offset = a.zero_offset;
  p.symmetric = a.symmetric;
  p.n = static_cast<uint32_t>(a.n);
  p.k = static_cast<uint32_t>(a.k);
  p.group = static_cast<uint32_t>(a.group);
  p.groups = static_cast<uint32_t>(a.k / a.group);
  p.row0 = static_cast<uint32_t>(a.row0);
  p.rows = static_cast<uint32_t>(a.rows);
  p.in = static_cast<const uint8_t*>(a.in);
  p.weights = a.weights;
  // 16-byte stores of 4 words (compressed-tensors layout): K-packed rows need K % 32.
  p.vec = reinterpret_cast<uintptr_t>(a.weights) % 16 == 0 && (p.layout != kInt4Ct || a.k % 32 == 0);
  p.scales = static_cast<uint8_t*>(a.scales);
  p.zeros = a.zeros;
  p.issue = reinterpret_cast<unsigned long long*>(ws);
  p.partials = reinterpret_cast<double*>(ws + l.partials);
  const bool wide = !tile_groups(a);
  p.given = wide ? reinterpret_cast<float2*>(ws + l.given) : nullptr;
  if (cudaError_t e = cudaMemsetAsync(ws, 0xFF, 8, stream)) return fail(e);
  const uint64_t tiles = tile_count(a);
  cudaError_t e = a.in_type == 0   ? launch<0>(p, wide, a.stats, tiles, a.max_ctas, stream)
                  : a.in_type == 1 ? launch<1>(p, wide, a.stats, tiles, a.max_ctas, stream)
                                   : launch<2>(p, wide, a.stats, tiles, a.max_ctas, stream);
  if (e != cudaSuccess) return fail(e);
  if (wide) {
    const uint64_t words = (a.rows + 7) / 8 * p.groups;
    params_store_kernel<<<static_cast<unsigned>((words + kThreads - 1) / kThreads), kThreads, 0, stream>>>(p);
    if ((e = cudaGetLastError()) != cudaSuccess) return fail(e);
  }
  if (a.g_idx && a.format == kInt4Gptq) {
    g_idx_kernel<<<static_cast<unsigned>((a.k + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a.g_idx, p.k, p.group);
    if ((e = cudaGetLastError()) != cudaSuccess) return fail(e);
  }
  return Int4Status::kSuccess;
}

size_t Int4QuantKernel::result_bytes(const Int4QuantArgs& a) {
  const Layout l = workspace_layout(a);
  return a.stats ? l.partials + 3 * tile_count(a) * sizeof(double) : 8;
}

Int4QuantResult Int4QuantKernel::result_from(const Int4QuantArgs& a, const void* host_copy) {
  const uint8_t* h = static_cast<const uint8_t*>(host_copy);
  const Layout l = workspace_layout(a);
  unsigned long long key = 0;
  std::memcpy(&key, h, 8);
  Int4QuantResult out;
  if (key != ~0ull) {
    out.issue = (key & 1) ? 2 : 1;
    out.row = (key >> 1) / a.k;
    out.col = (key >> 1) % a.k;
  }
  if (!a.stats) return out;
  for (uint64_t i = 0; i < tile_count(a); ++i) {  // in tile order: the same sums at every run and grid
    double v[3];
    std::memcpy(v, h + l.partials + 3 * i * sizeof(double), sizeof v);
    out.sum_sq_err += v[0];
    out.sum_sq += v[1];
    out.max_abs_err = std::max(out.max_abs_err, v[2]);
  }
  return out;
}

Int4Status Int4QuantKernel::read_result(const Int4QuantArgs& a, const void* workspace, cudaStream_t stream,
                                        Int4QuantResult* out) {
  if (!workspace) return Int4Status::kWorkspaceNull;
  std::vector<uint8_t> host(result_bytes(a));
  if (cudaError_t e = cudaMemcpyAsync(host.data(), workspace, host.size(), cudaMemcpyDeviceToHost, stream)) return fail(e);
  if (cudaError_t e = cudaStreamSynchronize(stream)) return fail(e);
  *out = result_from(a, host.data());
  return Int4Status::kSuccess;
}

}  // namespace ckpt::cuda
