// INT4 RTN quantization kernels: the same bytes as lib/ops/int4_quant.h's reference, with the
// per-group and per-element math taken from lib/ops/int4_math.h (host/device functions), so the
// two cannot drift apart.
//
// The work is tiles of 64 rows x 128 columns of the stripe (16 KB of BF16), walked by persistent
// 256-thread CTAs (as many as the GPU keeps resident: 3 per SM for 16-bit inputs, whose kernels
// fit 80 registers) in the order t = blockIdx.x, + gridDim.x, ...:
//
//     columns 0 ......................... 127
//   row  0  [ t0 t1 ... t15 | one word = 8 columns per thread, 16 threads per row ]
//   row  1  [ t16 ...   t31 ]
//    ...       (4 rounds of 16 rows: warp w holds rows 2w, 2w+1 of each round)
//   row 63
//
// 1. Load: a thread reads its 8 columns (16 bytes of BF16/F16, 32 of F32) in each of 4 rounds,
//    coalesced per row. The loads of the CTA's next tile are issued before the current tile's
//    math, so each thread keeps 64 bytes in flight all the time (3 x 16 KB per SM, above the ~20
//    KB per SM that HBM3's latency asks for at full bandwidth), not only between tiles.
// 2. Group parameters (groups of 8..128 columns dividing 128): the group's 1..16 threads are
//    consecutive lanes; a butterfly of shuffles gives each its amax (as float32 magnitude bits, so
//    a NaN/Inf is the largest), lo and hi (16-bit inputs: lo and -hi packed in one word, one
//    shuffle for both). The group's first lane puts them in a per-warp slot; then lane i of the
//    warp computes the parameters of slots i, i + 32, ... with int4_math.h — the division, the
//    rounding to the scale type and the reciprocal once per group instead of once per lane and
//    round (a warp holds 8 groups of 128 per tile: one pass instead of four). Wider groups
//    (group_size -1, or sizes not dividing 128) get their parameters from a first kernel (one CTA
//    per group, a block reduction) through the workspace.
// 3. Codes: clamp(rint(RN(x / S)) + z, 0, 15), as torch.round(x / scale) computes them, without
//    a division per element. The kernel is bound by instruction issue, not by DRAM (about 25
//    issue slots per element at 70% of an H200's bandwidth), so the per-element path is seven
//    full-rate instructions and no conversion-unit ones (floorf, float->int) — see code_word.
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
// 4. The 64 x 16 words of the tile go to shared memory and leave in the requested layout (the
//    format's own, or compressed-tensors' for an engine's cache: Int4QuantArgs::layout), each
//    thread storing 4 consecutive words with one 16-byte store: compressed-tensors rows as they
//    are (a row's 16 words by 4 threads), GPTQ transposed (64 consecutive columns of qweight per
//    row, 16 threads); AWQ's N-packed words come from an 8 x 8 nibble transpose of 8 rows' words
//    in registers (int4_nibble_transpose8: 72 instructions for 8 words instead of 8 nibble
//    extractions per word), stored as runs of 8 consecutive words; scales and zeros from the
//    slots, one element or word per thread.
// Issue budget: an H100 issues 132 SMs x 4 x ~1.75 GHz = 9.2e11 warp instructions per second;
// 70% of its ~2.9 TB/s copy at 2.53 bytes moved per BF16 element is 8.1e11 elements per second,
// so a thread may spend ~36 instructions per element. The codes take ~10 (step 3), the range and
// its shuffles ~2 (shuffles issue at a quarter of the rate), the stores ~1; a group's parameters
// (~60 instructions: two IEEE divisions, the scale type's rounding, a reciprocal) cost 7.5 per
// element when every lane computed them in every round and ~1.9 once per group (step 2).
// Problems (NaN/Inf, a scale overflowing its dtype) go to one 64-bit atomicMin of their
// row-major position, so the first one in the CPU's order is reported.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gpu_info.h"
#include "int4_quant.h"
#include "ops/int4_math.h"

namespace ckpt::cuda {

namespace {

using namespace ckpt::ops;

constexpr int kThreads = 256;
constexpr int kTileRows = 64;
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

// The zero word of rows grow8..grow8+7 (grow8 % 8 == 0) for group gi; z[i] of row grow8 + i, rows
// at or past N count as 0 (compressed-tensors pads).
__device__ __forceinline__ void store_zero_word(const Params& p, uint32_t grow8, uint32_t gi, const uint32_t z[8]) {
  uint32_t w = 0;
  for (int i = 0; i < 8; ++i) {
    uint32_t nib;
    if (p.layout == kInt4Gptq) nib = (z[i] - static_cast<uint32_t>(p.zero_offset)) & 15u;
    else if (p.layout == kInt4Awq) nib = z[kOrder[i]];
    else nib = grow8 + i < p.n ? z[i] : 0u;
    w |= nib << (4 * i);
  }
  if (p.layout == kInt4Ct) p.zeros[static_cast<uint64_t>(grow8 / 8) * p.groups + gi] = w;
  else p.zeros[static_cast<uint64_t>(gi) * (p.n / 8) + grow8 / 8] = w;
}

template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T t = 0;
  if (threadIdx.x == 0)
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) t += shared[i];
  return t;
}

template <typename T>
__device__ __forceinline__ T block_max(T v, T* shared) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T t = 0;
  if (threadIdx.x == 0)
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) t = max(t, shared[i]);
  return t;
}

// The raw words of one tile (see the top of the file): round `round` of this thread at rows
// lr0 + row_of(round), columns col0 + 8 (lane % 16) .. +7; zeros outside the stripe and for a
// tile index past the last (the prefetch of a CTA's last tile).
__device__ __forceinline__ uint32_t row_of(int round) {
  return static_cast<uint32_t>((round * 8 + static_cast<int>(threadIdx.x) / 32) * 2 + (threadIdx.x % 32) / 16);
}

template <int InType>
__device__ __forceinline__ void load_tile(const Params& p, uint32_t tile, uint32_t col_tiles, uint32_t tiles,
                                          Raw8<InType> raw[4]) {
  constexpr int esize = InType == 2 ? 4 : 2;
  const uint32_t lr0 = tile / col_tiles * kTileRows, col = tile % col_tiles * kTileCols + 8 * (threadIdx.x % 16);
#pragma unroll
  for (int round = 0; round < 4; ++round) {
    const uint32_t lr = lr0 + row_of(round);
    if (tile < tiles && lr < p.rows && col < p.k)
      raw[round] = load_raw8<InType>(p.in + (static_cast<uint64_t>(lr) * p.k + col) * esize);
    else
      raw[round] = Raw8<InType>{};
  }
}

// Per-warp group slots (step 2): warp w's groups of the 4 rounds, slot
// round * 2 ng + (lane / 16) * ng + (column in the tile) / group with ng = 128 / group groups per
// tile row, at most 8 * 16 = 128 per warp. The reduction leaves (amax bits, lo, hi) in a slot, the
// parameter pass replaces them with (scale, 1/scale, zero).
constexpr int kSlots = 128;
struct Slots {
  uint32_t a[kThreads / 32][kSlots], b[kThreads / 32][kSlots], c[kThreads / 32][kSlots];
};
// The slot of tile row r, group j of that row.
__device__ __forceinline__ uint32_t slot_of(uint32_t r, uint32_t j, uint32_t ng) {
  return (r / 16) * 2 * ng + (r % 2) * ng + j;
}

// Reduction over the gw aligned consecutive lanes of a group (butterfly: every lane ends with the
// group's values). 16-bit asymmetric inputs carry lo and -hi as one packed pair (both exact in the
// input type), so a level is two shuffles instead of three.
template <int InType, bool kSym>
__device__ __forceinline__ void group_reduce(uint32_t gw, uint32_t& mb, float& lo, float& hi) {
  if constexpr (InType != 2 && !kSym) {
    using Pair = std::conditional_t<InType == 0, __nv_bfloat162, __half2>;
    Pair lh;
    if constexpr (InType == 0) lh = __floats2bfloat162_rn(lo, -hi);
    else lh = __floats2half2_rn(lo, -hi);
    for (uint32_t o = 1; o < gw; o <<= 1) {
      mb = max(mb, __shfl_xor_sync(kFull, mb, o));
      uint32_t bits = __shfl_xor_sync(kFull, *reinterpret_cast<const uint32_t*>(&lh), o);
      lh = __hmin2(lh, *reinterpret_cast<const Pair*>(&bits));
    }
    lo = __low2float(lh);
    hi = -__high2float(lh);
  } else {
    for (uint32_t o = 1; o < gw; o <<= 1) {
      mb = max(mb, __shfl_xor_sync(kFull, mb, o));
      if (!kSym) {
        lo = fminf(lo, __shfl_xor_sync(kFull, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(kFull, hi, o));
      }
    }
  }
}

// Persistent CTAs (gridDim.x <= tiles) walk the tiles t = blockIdx.x, + gridDim.x, ...; the loads
// of a CTA's next tile are issued before the math of its current one, so every thread keeps 64
// (F32: 128) bytes in flight through the whole kernel instead of only between tiles. kGiven:
// parameters from p.given (wide groups).
template <int InType, bool kGiven, bool kStats, bool kSym>
__global__ void __launch_bounds__(kThreads, InType == 2 ? 2 : 3) tile_kernel(Params p) {
  __shared__ uint32_t words[kTileRows][kWordsPerRow + 1];
  __shared__ Slots slots;
  __shared__ double reduce[kThreads / 32];
  const uint32_t col_tiles = (p.k + kTileCols - 1) / kTileCols;
  const uint32_t tiles = col_tiles * ((p.rows + kTileRows - 1) / kTileRows);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c8 = lane % 16;
  const uint32_t gw = kGiven ? 1 : p.group / 8;  // lanes per group
  const uint32_t ng = kGiven ? 1 : kTileCols / p.group;  // groups per tile row
  const uint32_t t = threadIdx.x;
  Raw8<InType> raw[4];
  load_tile<InType>(p, blockIdx.x, col_tiles, tiles, raw);
  for (uint32_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    Raw8<InType> next[4];
    load_tile<InType>(p, tile + gridDim.x, col_tiles, tiles, next);
    const uint32_t lr0 = tile / col_tiles * kTileRows, col0 = tile % col_tiles * kTileCols;
    const uint32_t col = col0 + 8 * c8;
    float sq_err = 0, sq = 0, max_err = 0;
    bool bad[4] = {false, false, false, false};
    uint32_t* sa = slots.a[warp];
    uint32_t* sb = slots.b[warp];
    uint32_t* sc = slots.c[warp];
    if (!kGiven) {
      // Step 2, reduction: the group's range into its slot.
#pragma unroll
      for (int round = 0; round < 4; ++round) {
        float x[8];
        widen8<InType>(raw[round], x);
        uint32_t mb;
        float lo, hi;
        range8<InType, kSym>(raw[round], x, mb, lo, hi);
        bad[round] = mb >= 0x7F800000u;
        group_reduce<InType, kSym>(gw, mb, lo, hi);
        if (c8 % gw == 0) {
          const uint32_t s = slot_of(row_of(round), c8 / gw, ng);
          sa[s] = mb;
          sb[s] = __float_as_uint(lo);
          sc[s] = __float_as_uint(hi);
        }
      }
      __syncwarp();
      // Step 2, parameters: once per group (not once per lane of it), lane i taking slots i, i + 32...
      for (uint32_t s = lane; s < 8 * ng; s += 32) {
        const uint32_t mb = sa[s];
        Group g{1.0f, 1.0f, 0, false};  // a group holding a NaN/Inf: reported by its lanes below
        if (mb < 0x7F800000u) {
          g = group_params(p, __uint_as_float(mb), __uint_as_float(sb[s]), __uint_as_float(sc[s]));
          if (g.overflow) {
            const uint32_t r = (s / (2 * ng)) * 16 + warp * 2 + (s / ng) % 2, gcol = col0 + (s % ng) * p.group;
            if (lr0 + r < p.rows && gcol < p.k) report(p, lr0 + r, gcol, true);
            g.scale = 1.0f;
            g.rinv = 1.0f;
          }
        }
        sa[s] = __float_as_uint(g.scale);
        sb[s] = __float_as_uint(g.rinv);
        sc[s] = g.zero;
      }
      __syncwarp();
    }
    // Step 3: codes.
#pragma unroll
    for (int round = 0; round < 4; ++round) {
      const uint32_t r = row_of(round), lr = lr0 + r;
      const bool valid = lr < p.rows && col < p.k;
      float x[8];
      widen8<InType>(raw[round], x);  // invalid lanes: zeros
      Group g;
      if (kGiven) {
        if (valid) {
          const float2 v = p.given[static_cast<uint64_t>(lr) * p.groups + col / p.group];
          g.scale = v.x;
          g.zero = static_cast<uint32_t>(v.y);
          g.rinv = __frcp_rn(g.scale);
        } else {
          g.scale = 1.0f;
          g.zero = 0;
          g.rinv = 1.0f;
        }
      } else {
        const uint32_t s = slot_of(r, c8 / gw, ng);
        g.scale = __uint_as_float(sa[s]);
        g.rinv = __uint_as_float(sb[s]);
        g.zero = sc[s];
        if (bad[round] && valid)  // each lane holding a NaN/Inf reports its first, the minimum wins
          for (int i = 0; i < 8; ++i)
            if (!isfinite(x[i])) {
              report(p, lr, col + i, false);
              break;
            }
      }
      uint32_t codes[8];
      words[r][c8] = code_word(x, g, codes);
      if (kStats && valid) {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float e = x[i] - int4_dequant(codes[i], g.zero, g.scale);
          sq_err += e * e;
          sq += x[i] * x[i];
          max_err = fmaxf(max_err, fabsf(e));
        }
      }
    }
    __syncthreads();

    // Step 4: weights in the layout, 16-byte stores of 4 words wherever all four exist (p.vec:
    // aligned), single words at the edges.
    if (p.layout == kInt4Ct) {
      // Row r, words c4 .. c4 + 3 of the tile's 16.
      const uint32_t r = t / 4, c4 = 4 * (t % 4);
      if (lr0 + r < p.rows) {
        uint32_t* dst = p.weights + static_cast<uint64_t>(p.row0 + lr0 + r) * (p.k / 8) + col0 / 8 + c4;
        if (p.vec && col0 + 8 * (c4 + 3) < p.k) {
          *reinterpret_cast<uint4*>(dst) = make_uint4(words[r][c4], words[r][c4 + 1], words[r][c4 + 2], words[r][c4 + 3]);
        } else {
          for (uint32_t i = 0; i < 4; ++i)
            if (col0 + 8 * (c4 + i) < p.k) dst[i] = words[r][c4 + i];
        }
      }
    } else if (p.layout == kInt4Gptq) {
      // qweight row col0 / 8 + c8, columns (rows of the weight) r4 .. r4 + 3.
      const uint32_t c8w = t / 16, r4 = 4 * (t % 16);
      if (col0 + 8 * c8w < p.k) {
        uint32_t* dst = p.weights + static_cast<uint64_t>(col0 / 8 + c8w) * p.n + p.row0 + lr0 + r4;
        if (p.vec && lr0 + r4 + 3 < p.rows) {
          *reinterpret_cast<uint4*>(dst) = make_uint4(words[r4][c8w], words[r4 + 1][c8w], words[r4 + 2][c8w], words[r4 + 3][c8w]);
        } else {
          for (uint32_t i = 0; i < 4; ++i)
            if (lr0 + r4 + i < p.rows) dst[i] = words[r4 + i][c8w];
        }
      }
    } else if (t < kTileCols) {
      // AWQ: thread (c8, m) of the first 128 takes the words of rows 8 m + kOrder[i] at column
      // word c8 and transposes their nibbles: word e then holds qweight (col0 + 8 c8 + e, m). A
      // warp's stores of one e are 4 runs of 8 consecutive words. (AWQ stripes hold whole words:
      // rows % 8 == 0; K % 8 == 0.)
      const uint32_t c8w = t / 8, m = t % 8;
      if (lr0 + 8 * m < p.rows && col0 + 8 * c8w < p.k) {
        uint32_t a[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) a[i] = words[8 * m + kOrder[i]][c8w];
        int4_nibble_transpose8(a);
        uint32_t* dst = p.weights + static_cast<uint64_t>(col0 + 8 * c8w) * (p.n / 8) + (p.row0 + lr0) / 8 + m;
#pragma unroll
        for (int e = 0; e < 8; ++e) dst[static_cast<uint64_t>(e) * (p.n / 8)] = a[e];
      }
    }

    // Scales and zeros of the tile's groups from the slots (wide groups: params_store_kernel).
    if (!kGiven) {
      for (uint32_t idx = t; idx < kTileRows * ng; idx += kThreads) {
        uint32_t r, j;
        if (p.layout == kInt4Ct) {
          r = idx / ng;
          j = idx % ng;
        } else {
          j = idx / kTileRows;
          r = idx % kTileRows;
        }
        if (lr0 + r < p.rows && col0 + j * p.group < p.k)
          store_scale(p, p.row0 + lr0 + r, col0 / p.group + j, __uint_as_float(slots.a[(r / 2) % 8][slot_of(r, j, ng)]));
      }
      if (p.zeros) {
        for (uint32_t idx = t; idx < (kTileRows / 8) * ng; idx += kThreads) {
          const uint32_t m = p.layout == kInt4Ct ? idx / ng : idx % (kTileRows / 8);
          const uint32_t j = p.layout == kInt4Ct ? idx % ng : idx / (kTileRows / 8);
          if (lr0 + 8 * m < p.rows && col0 + j * p.group < p.k) {
            uint32_t z[8];
            for (uint32_t i = 0; i < 8; ++i) {
              const uint32_t r = 8 * m + i;
              z[i] = lr0 + r < p.rows ? slots.c[(r / 2) % 8][slot_of(r, j, ng)] : 0u;
            }
            store_zero_word(p, p.row0 + lr0 + 8 * m, col0 / p.group + j, z);
          }
        }
      }
    }

    if (kStats) {  // per tile, so the sums do not depend on the grid
      const double a = block_sum<double>(sq_err, reduce), b = block_sum<double>(sq, reduce);
      const double c = block_max<double>(max_err, reduce);
      if (threadIdx.x == 0) {
        double* out = p.partials + 3 * static_cast<uint64_t>(tile);
        out[0] = a;
        out[1] = b;
        out[2] = c;
      }
    }
    __syncthreads();  // words and slots are rewritten by the next tile
#pragma unroll
    for (int i = 0; i < 4; ++i) raw[i] = next[i];
  }
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

template <typename Kernel>
cudaError_t launch_tiles(Kernel kernel, const Params& p, uint64_t tiles, uint32_t max_ctas, cudaStream_t s) {
  unsigned grid = 0;
  if (cudaError_t e = persistent_grid(reinterpret_cast<const void*>(kernel), kThreads, tiles, max_ctas, &grid)) return e;
  kernel<<<grid, kThreads, 0, s>>>(p);
  return cudaGetLastError();
}

template <int InType, bool kSym>
cudaError_t launch(const Params& p, bool wide, bool stats, uint64_t tiles, uint32_t max_ctas, cudaStream_t s) {
  if (wide) {
    wide_params_kernel<InType><<<dim3(p.groups, p.rows), kThreads, 0, s>>>(p);
    if (cudaError_t e = cudaGetLastError()) return e;
    return stats ? launch_tiles(tile_kernel<InType, true, true, kSym>, p, tiles, max_ctas, s)
                 : launch_tiles(tile_kernel<InType, true, false, kSym>, p, tiles, max_ctas, s);
  }
  return stats ? launch_tiles(tile_kernel<InType, false, true, kSym>, p, tiles, max_ctas, s)
               : launch_tiles(tile_kernel<InType, false, false, kSym>, p, tiles, max_ctas, s);
}

template <int InType>
cudaError_t launch(const Params& p, bool wide, bool stats, uint64_t tiles, uint32_t max_ctas, cudaStream_t s) {
  return p.symmetric ? launch<InType, true>(p, wide, stats, tiles, max_ctas, s)
                     : launch<InType, false>(p, wide, stats, tiles, max_ctas, s);
}

}  // namespace

cudaError_t persistent_grid(const void* kernel, int threads, uint64_t work, uint32_t max_ctas, unsigned* grid) {
  int per_sm = 0;
  if (cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0)) return e;
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
  // 16-byte groups of 4 words (compressed-tensors and GPTQ layouts): K-packed rows need K % 32;
  // GPTQ's rows are N % 8 words long and start at row0 % 8.
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
