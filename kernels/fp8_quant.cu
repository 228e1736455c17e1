// FP8 E4M3FN quantization kernels: a per-block amax and the quantize pass (lib/ops/fp8_quant.h
// gives the exact rules), the same codes bit for bit as the CPU (checked by tests/gpu/).
//
// Both passes must run at the speed of memory: quantize moves 3 bytes per bf16 element (read 2,
// write 1), which on an H200 (4.8 TB/s) leaves time for ~21 issue slots per element at best. So
// each element costs what it must and no more:
//  - x / scale, correctly rounded, is three FMAs and a multiply by the scale's reciprocal, taken
//    once per scale (quotient(), with the proof that it is the IEEE quotient), not a division;
//  - the code is the hardware's saturating RNE conversion, two elements per instruction, which
//    also does the definition's clamp to ±448 (encode_pair());
//  - the error report decodes two codes per instruction and keeps float32 sums per thread;
//  - a thread handles a run of 16 consecutive elements per step (two 16-byte loads of 16-bit
//    inputs, one 16-byte store of codes) and requests the next run's bytes and scales as soon as
//    this run is in registers, before computing it, so every thread always has loads in flight;
//  - a run looks its block up once (both of its 8-element vectors lie in one block whenever rows,
//    blocks and the chunk start are multiples of 16), with divisions by the geometry done as one
//    multiply and a shift (FastDiv).
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>

#include "fp8_quant.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xFFFFFFFFu;
// A vector is 8 consecutive elements (16 bytes of a 16-bit input): the unit of the block lookups
// in kRuns and kVectors. A run is the two vectors one thread handles per step.
constexpr uint32_t kVec = 8;
constexpr uint32_t kRun = 2 * kVec;

// kSingle: one block (per-tensor); kRuns: every run lies in one block (rows, block widths and the
// chunk start are multiples of 16: one lookup per run); kVectors: every vector lies in one block
// (multiples of 8: a lookup per vector); kGeneral: any shape (the block of each element on its own).
enum Mode { kSingle, kRuns, kVectors, kGeneral };

// n / d for any n < 2^31 as a multiply and a shift: mul = ceil(2^(31+k) / d) with 2^k >= d (so mul
// < 2^32). n·mul / 2^(31+k) exceeds n/d by n·(mul·d − 2^(31+k)) / (d·2^(31+k)) < 2^31·d / (d·2^(31+k))
// = 2^-k <= 1/d, too little to reach the next integer above n/d, so the floor is exactly n / d.
// (An integer division is ~20 instructions, and widths like 5120 or 13824 are no powers of two.)
struct FastDiv {
  uint32_t mul, shift;
  static FastDiv of(uint32_t d) {
    const uint32_t k = d == 1 ? 0 : 32 - __builtin_clz(d - 1);
    return {static_cast<uint32_t>(((1ull << (31 + k)) + d - 1) / d), 31 + k};
  }
  __device__ __forceinline__ uint32_t operator()(uint32_t n) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(n) * mul) >> shift);
  }
};

// Where the chunk sits in the weight, in units of one element (kGeneral) or one vector (kRuns,
// kVectors). make_geo checks that every position fits in 31 bits.
struct Geo {
  FastDiv per_row, per_block_row, per_block_col;  // divide by cols, block_rows, block_cols
  uint32_t cols;        // row length, in units
  uint32_t r0, c0;      // row and column (in units) of the chunk's first element
  uint32_t grid_cols;   // blocks per row of the scale grid
  uint32_t group_base;  // the first grid index the device arrays hold, modulo 2^32
  uint32_t stretch;     // the most adjacent lanes of the run loops whose runs (or vectors) share a block
};

// The scale-array index of the block holding unit u of the chunk. The arithmetic wraps modulo 2^32,
// which gives the index exactly: it is below 2^31 (make_geo).
__device__ __forceinline__ uint32_t group_at(const Geo& g, uint32_t u) {
  const uint32_t pos = g.c0 + u;
  const uint32_t r = g.per_row(pos);
  return g.per_block_row(g.r0 + r) * g.grid_cols + g.per_block_col(pos - r * g.cols) - g.group_base;
}

// --- loads ---------------------------------------------------------------------------------------

template <int Type>
__device__ __forceinline__ float load_one(const void* in, uint32_t i) {
  if (Type == kFp8InBF16) return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(in)[i]) << 16);
  if (Type == kFp8InF16) return __half2float(static_cast<const __half*>(in)[i]);
  return static_cast<const float*>(in)[i];
}

// A run's bytes as loaded: 16 elements, two 16-byte pieces of a 16-bit input (one per vector) or
// four of float32 (two per vector).
template <int Type>
struct RunBytes {
  static constexpr int kPieces = Type == kFp8InF32 ? 4 : 2;
  uint4 piece[kPieces];
};

template <int Type>
__device__ __forceinline__ RunBytes<Type> load_run(const void* in, uint32_t t) {
  const uint4* p = static_cast<const uint4*>(in) + static_cast<size_t>(t) * RunBytes<Type>::kPieces;
  RunBytes<Type> b;
#pragma unroll
  for (int k = 0; k < RunBytes<Type>::kPieces; ++k) b.piece[k] = __ldg(p + k);
  return b;
}

// The run's elements widened to float32 (exact).
template <int Type>
__device__ __forceinline__ void widen(const RunBytes<Type>& b, float x[kRun]) {
#pragma unroll
  for (int k = 0; k < RunBytes<Type>::kPieces; ++k) {
    const uint32_t w[4] = {b.piece[k].x, b.piece[k].y, b.piece[k].z, b.piece[k].w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (Type == kFp8InF32) {
        x[4 * k + j] = __uint_as_float(w[j]);
      } else if (Type == kFp8InBF16) {
        x[8 * k + 2 * j] = __uint_as_float(w[j] << 16);
        x[8 * k + 2 * j + 1] = __uint_as_float(w[j] & 0xFFFF0000u);
      } else {
        __half2_raw h;
        h.x = static_cast<unsigned short>(w[j] & 0xFFFFu);
        h.y = static_cast<unsigned short>(w[j] >> 16);
        const float2 f = __half22float2(__half2(h));
        x[8 * k + 2 * j] = f.x, x[8 * k + 2 * j + 1] = f.y;
      }
    }
  }
}

// --- amax ----------------------------------------------------------------------------------------

constexpr uint32_t kNoGroup = kFull;  // a lane past the end of the chunk

__device__ __forceinline__ unsigned magnitude_bits(float x) { return __float_as_uint(x) & 0x7FFFFFFFu; }

// The largest magnitude in each vector of a run, as float32 bits (NaN and ±Inf give values >=
// 0x7F800000). 16-bit inputs compare their magnitude bits two at a time (one max.u16x2 per two
// elements: for IEEE-style formats, integer order of the magnitude bits is numeric order, NaNs
// above Inf) and widen only the winner.
template <int Type>
__device__ __forceinline__ void run_maxima(const RunBytes<Type>& b, unsigned m[2]) {
#pragma unroll
  for (int v = 0; v < 2; ++v) {
    if (Type == kFp8InF32) {
      const uint4 p = b.piece[2 * v], q = b.piece[2 * v + 1];
      m[v] = max(max(max(p.x & 0x7FFFFFFFu, p.y & 0x7FFFFFFFu), max(p.z & 0x7FFFFFFFu, p.w & 0x7FFFFFFFu)),
                 max(max(q.x & 0x7FFFFFFFu, q.y & 0x7FFFFFFFu), max(q.z & 0x7FFFFFFFu, q.w & 0x7FFFFFFFu)));
      continue;
    }
    const uint4 p = b.piece[v];
    const unsigned pair = __vmaxu2(__vmaxu2(p.x & 0x7FFF7FFFu, p.y & 0x7FFF7FFFu),
                                   __vmaxu2(p.z & 0x7FFF7FFFu, p.w & 0x7FFF7FFFu));
    const unsigned short top = static_cast<unsigned short>(max(pair & 0xFFFFu, pair >> 16));
    m[v] = Type == kFp8InBF16 ? static_cast<unsigned>(top) << 16 : __float_as_uint(__half2float(__ushort_as_half(top)));
  }
}

// amax[grp] = max(amax[grp], m) for every lane of the warp (all lanes call it; kNoGroup lanes add
// nothing), one atomic per stretch of lanes with the same block. The lanes hold consecutive runs,
// vectors or elements, so a block's lanes are adjacent, at most `stretch` (<= 32) of them: a
// segmented max toward each stretch's first lane (a lane takes its neighbour's max only if that
// lane is in its block, so after steps of 1, 2, 4, ... up to below `stretch` the first lane holds
// the max of its whole stretch; a block met again further on, as when rows are shorter than the
// warp's span, is merged where it meets, which is harmless). A warp inside one block (per-channel
// rows, most of the time) takes one reduction instead. (128-wide blocks of bf16 runs: 3 steps.)
__device__ __forceinline__ void raise_amax(unsigned* amax, uint32_t grp, unsigned m, uint32_t stretch) {
  const uint32_t lane = threadIdx.x & 31u;
  if (__all_sync(kFull, grp == __shfl_sync(kFull, grp, 0))) {
    m = __reduce_max_sync(kFull, m);
    if (lane == 0 && grp != kNoGroup) atomicMax(&amax[grp], m);
    return;
  }
  for (uint32_t off = 1; off < stretch; off *= 2) {
    const unsigned other = __shfl_down_sync(kFull, m, off);  // lanes past 31 get their own values
    if (__shfl_down_sync(kFull, grp, off) == grp) m = max(m, other);
  }
  const uint32_t prev = __shfl_up_sync(kFull, grp, 1);
  if (grp != kNoGroup && (lane == 0 || prev != grp)) atomicMax(&amax[grp], m);
}

template <int Type, int M>
__global__ void __launch_bounds__(kThreads)
    amax_kernel(const void* __restrict__ in, Geo g, uint32_t count, uint32_t runs, unsigned* amax) {
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t stride = gridDim.x * kThreads;
  unsigned running = 0;  // kSingle: one block, reduced once at the end
  // The loops step over the warp's first run (element), the same for all lanes, so the warp stays
  // converged for raise_amax's collectives. Runs first: once a run's maxima are taken, its
  // registers receive the next run's bytes, in flight while this run's blocks are raised.
  uint32_t base = blockIdx.x * kThreads + (threadIdx.x & ~31u);
  if (base < runs) {
    RunBytes<Type> bytes;
    if (base + lane < runs) bytes = load_run<Type>(in, base + lane);
    for (; base < runs; base += stride) {
      const uint32_t t = base + lane;
      unsigned m[2] = {0, 0};
      if (t < runs) run_maxima<Type>(bytes, m);
      if (t + stride < runs) bytes = load_run<Type>(in, t + stride);
      if (M == kSingle) {
        running = max(running, max(m[0], m[1]));
      } else if (M == kRuns) {
        raise_amax(amax, t < runs ? group_at(g, 2 * t) : kNoGroup, max(m[0], m[1]), g.stretch);
      } else {
        raise_amax(amax, t < runs ? group_at(g, 2 * t) : kNoGroup, m[0], g.stretch);
        raise_amax(amax, t < runs ? group_at(g, 2 * t + 1) : kNoGroup, m[1], g.stretch);
      }
    }
  }
  // Then one element at a time: a whole kGeneral chunk, else the last count % 16 elements.
  for (base = runs * kRun + blockIdx.x * kThreads + (threadIdx.x & ~31u); base < count; base += stride) {
    const uint32_t i = base + lane;
    unsigned m = 0;
    uint32_t grp = kNoGroup;
    if (i < count) {
      m = magnitude_bits(load_one<Type>(in, i));
      grp = M == kSingle ? 0 : group_at(g, M == kGeneral ? i : i / kVec);
    }
    if (M == kSingle) running = max(running, m);
    else raise_amax(amax, grp, m, 32);
  }
  if (M == kSingle) {
    running = __reduce_max_sync(kFull, running);
    if (lane == 0 && running) atomicMax(&amax[0], running);
  }
}

// --- quantize ------------------------------------------------------------------------------------

// A block's scale as the quantizer divides by it.
struct Divisor {
  float s;    // the scale
  float nr;   // −RN(1/s)
  bool fast;  // 2^-64 <= s < 2^65: quotient() is the IEEE quotient
};

__device__ __forceinline__ Divisor divisor_of(float s) {
  // The biased exponent in [63, 191]; a negative, NaN or infinite s (never a scale) fails too.
  return {s, -__frcp_rn(s), (__float_as_uint(s) >> 23) - 63u <= 128u};
}

// x / s rounded to nearest even, as IEEE division gives it (__fdiv_rn costs a reciprocal on the
// slow multi-function unit, Newton steps and a range check per element), for a fast divisor, with
// r = RN(1/s) = (1 + ρ)/s, |ρ| <= 2^-24:
//   q0 = RN(x·r)                   within 1.5 ulp of Q = x/s (not always faithful);
//   q1 = RN(q0 + RN(q0·s − x)·(−r))  Q + δ before its rounding with |δ| < 2^-22 ulp, so q1 is
//                                  faithful (one of the two floats around Q);
//   q2 = RN(q1 + (q1·s − x)·(−r))    with q1·s − x exact (q1 faithful), q2 = RN(Q) by Markstein's
//                                  theorem (r correctly rounded, q1 faithful, nothing under- or
//                                  overflowing: Handbook of Floating-Point Arithmetic, ch. 4/5).
// (q1 alone was the IEEE quotient in all of ~3·10^10 pairs tried on a CPU, but with q0 not always
// faithful the theorem does not cover it; the second correction costs two FMAs per element, felt
// only by the block and channel modes, which look a scale up per run.)
// Ranges, for s in [2^-64, 2^65) and any finite x:
//  - |Q| >= 2^-20: x = Q·s >= 2^-84 is normal and the remainder q·s − x, a multiple of
//    ulp(q)·ulp(s) >= 2^-131, is representable, so the theorem holds.
//  - |Q| < 2^-20: the code is ±0 by the sign of x, and so it is here: every step above is within a
//    relative 2^-22 plus a few 2^-150 of Q, far below 2^-10 (where codes start); a q1 that rounds to
//    zero (|Q| < 2^-150 or so) leaves q1·s − x = −x exactly and q2 = RN(x·r), of x's sign. The
//    signs are placed so that −0 stays −0: with x = −0, q0 = −0, the remainder q0·s − x is +0 and
//    q1 = (+0)·(−r) + (−0) = −0. The negation sits on the reciprocal, never on an FMA's result:
//    −fma(a, b, c) may be compiled as fma(−a, b, −c), which turns a +0 into +0 instead of −0.
//  - overflow (|Q| near 2^128 and above): q0 or q1 becomes ±Inf and the next step Inf − Inf = NaN,
//    a NaN code that quantize_run() sees in its error sum and recomputes with __fdiv_rn. A q2 of
//    ±Inf from finite steps is RN(Q) overflowing, which saturates to the same ±448.
// tests/gpu/test_fp8_quant_gpu.cpp checks every 16-bit input at ~220 scales, these bounds among
// them, and f32 inputs placed around every E4M3 rounding boundary.
__device__ __forceinline__ float quotient(float x, const Divisor& d) {
  const float q0 = __fmul_rn(x, -d.nr);
  const float q1 = __fmaf_rn(__fmaf_rn(q0, d.s, -x), d.nr, q0);
  return __fmaf_rn(__fmaf_rn(q1, d.s, -x), d.nr, q1);
}

// E4M3FN codes of quotients. The hardware conversion (cvt.rn.satfinite.e4m3x2.f32) rounds to nearest
// even and saturates every finite value beyond ±448 and ±Inf to ±448 (CUDA Math API __NV_SATFINITE,
// measured on an H200), which is the definition's clamp to ±448, so none is done here. encode_pair puts a in
// the low byte.
__device__ __forceinline__ uint8_t encode(float q) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(q, __NV_SATFINITE, __NV_E4M3));
}
__device__ __forceinline__ __nv_fp8x2_storage_t encode_pair(float a, float b) {
  return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}

// The report's error terms: float32 per thread (a thread sees ~1000 elements, a run's squared
// errors summed first), double across threads; decoding uses the hardware conversion (exact).
struct Err {
  float se = 0, sw = 0, me = 0;  // Σ err², Σ w², max |err|
  __device__ __forceinline__ void add(float x, uint8_t code, float scale) {
    const float dec = __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));
    const float e = __fmaf_rn(-dec, scale, x);
    se = __fmaf_rn(e, e, se);
    sw = __fmaf_rn(x, x, sw);
    me = fmaxf(me, fabsf(e));
  }
};

// The 16 codes of a run (vector 0 divided by d0, vector 1 by d1), little-endian in a uint4, with
// the run's squared errors and largest error added to err (Σ w² is the caller's).
__device__ __forceinline__ uint4 quantize_run(const float x[kRun], const Divisor& d0, const Divisor& d1, Err& err) {
  bool exact = !(d0.fast && d1.fast);
  for (;;) {  // once, or twice when the fast quotients overflowed
    float q[kRun];
    if (exact) {
#pragma unroll
      for (uint32_t k = 0; k < kRun; ++k) q[k] = __fdiv_rn(x[k], (k < kVec ? d0 : d1).s);
    } else {
#pragma unroll
      for (uint32_t k = 0; k < kRun; ++k) q[k] = quotient(x[k], k < kVec ? d0 : d1);
    }
    uint32_t word[4] = {0, 0, 0, 0};
    float se = 0, me = 0;
#pragma unroll
    for (uint32_t p = 0; p < kRun / 2; ++p) {
      const float s = (2 * p < kVec ? d0 : d1).s;
      const __nv_fp8x2_storage_t c = encode_pair(q[2 * p], q[2 * p + 1]);
      word[p / 2] |= static_cast<uint32_t>(c) << (16 * (p % 2));
      const float2 dec = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(c, __NV_E4M3)));
      const float e0 = __fmaf_rn(-dec.x, s, x[2 * p]), e1 = __fmaf_rn(-dec.y, s, x[2 * p + 1]);
      se = __fmaf_rn(e1, e1, __fmaf_rn(e0, e0, se));
      me = fmaxf(me, fmaxf(fabsf(e0), fabsf(e1)));
    }
    // A NaN code (only from an overflowing fast quotient: the inputs are finite) decodes to NaN
    // and makes se NaN; the exact division saturates it like the definition.
    if (exact || !isnan(se)) {
      err.se += se;
      err.me = fmaxf(err.me, me);
      return make_uint4(word[0], word[1], word[2], word[3]);
    }
    exact = true;
  }
}

// The scales of run t's two vectors (kSingle: none; kRuns: one).
template <int M>
__device__ __forceinline__ float2 run_scales(const Geo& g, const float* __restrict__ scales, uint32_t t) {
  if (M == kSingle) return make_float2(0, 0);
  const float s0 = __ldg(scales + group_at(g, 2 * t));
  return make_float2(s0, M == kRuns ? s0 : __ldg(scales + group_at(g, 2 * t + 1)));
}

template <int Type, int M>
__global__ void __launch_bounds__(kThreads)
    quantize_kernel(const void* __restrict__ in, Geo g, uint32_t count, uint32_t runs, const float* __restrict__ scales,
                    uint8_t* __restrict__ codes, double* partials) {
  const uint32_t stride = gridDim.x * kThreads;
  Err err;
  uint32_t t = blockIdx.x * kThreads + threadIdx.x;
  if (t < runs) {
    const Divisor single = M == kSingle ? divisor_of(__ldg(scales)) : Divisor{};
    RunBytes<Type> bytes = load_run<Type>(in, t);
    float2 run_scale = run_scales<M>(g, scales, t);
    for (; t < runs; t += stride) {
      float x[kRun];
      widen<Type>(bytes, x);
      Divisor d0 = single, d1 = single;
      if (M != kSingle) {
        d0 = divisor_of(run_scale.x);
        d1 = M == kRuns ? d0 : divisor_of(run_scale.y);
      }
      // This run is in registers: the same registers now receive the next run's bytes and scales,
      // in flight while this run is computed (no copies between a current and a next set).
      if (t + stride < runs) {
        bytes = load_run<Type>(in, t + stride);
        run_scale = run_scales<M>(g, scales, t + stride);
      }
#pragma unroll
      for (uint32_t k = 0; k < kRun; ++k) err.sw = __fmaf_rn(x[k], x[k], err.sw);
      reinterpret_cast<uint4*>(codes)[t] = quantize_run(x, d0, d1, err);
    }
  }
  // Then one element at a time (exact division): a whole kGeneral chunk, else the last count % 16.
  for (uint32_t i = runs * kRun + blockIdx.x * kThreads + threadIdx.x; i < count; i += stride) {
    const float x = load_one<Type>(in, i);
    const float s = __ldg(scales + (M == kSingle ? 0 : group_at(g, M == kGeneral ? i : i / kVec)));
    const uint8_t c = encode(__fdiv_rn(x, s));
    err.add(x, c, s);
    codes[i] = c;
  }
  // Block reduction in a fixed order: the partials depend only on the launch shape.
  __shared__ double sh[kThreads / 32][3];
  double se = err.se, sw = err.sw, me = err.me;
  for (int off = 16; off > 0; off >>= 1) {
    se += __shfl_down_sync(kFull, se, off);
    sw += __shfl_down_sync(kFull, sw, off);
    me = fmax(me, __shfl_down_sync(kFull, me, off));
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

// --- launch --------------------------------------------------------------------------------------

bool make_geo(const Fp8ChunkDesc& d, Geo& g, Mode& mode) {
  // 32-bit index math: the chunk and every row/column index must fit.
  if (d.count >= (1ull << 31) || d.cols >= (1ull << 31) || d.rows >= (1ull << 32) || d.block_rows == 0 ||
      d.block_cols == 0 || d.cols == 0)
    return false;
  const uint64_t block_rows = std::min(d.block_rows, d.rows), block_cols = std::min(d.block_cols, d.cols);
  const uint64_t r0 = d.first / d.cols, c0 = d.first % d.cols;
  const uint64_t grid_cols = (d.cols + block_cols - 1) / block_cols;
  auto all_multiples_of = [&](uint64_t n) { return d.cols % n == 0 && block_cols % n == 0 && d.first % n == 0; };
  if (block_rows >= d.rows && block_cols >= d.cols) mode = kSingle;
  else if (all_multiples_of(kRun)) mode = kRuns;
  else if (all_multiples_of(kVec)) mode = kVectors;
  else mode = kGeneral;
  if (mode == kSingle) return true;  // no block lookups
  // Positions within the first row plus the chunk, the rows, and the chunk's scale-array indices
  // (up to the end of its last block row) below 2^31.
  const uint64_t last_row = (d.first + std::max<uint64_t>(d.count, 1) - 1) / d.cols;
  if (c0 + d.count >= (1ull << 31) || d.rows >= (1ull << 31) ||
      (last_row / block_rows + 1) * grid_cols - d.group_base >= (1ull << 31))
    return false;
  const uint64_t unit = mode == kGeneral ? 1 : kVec;
  g.per_row = FastDiv::of(static_cast<uint32_t>(d.cols / unit));
  g.per_block_row = FastDiv::of(static_cast<uint32_t>(block_rows));
  g.per_block_col = FastDiv::of(static_cast<uint32_t>(block_cols / unit));
  g.cols = static_cast<uint32_t>(d.cols / unit);
  g.r0 = static_cast<uint32_t>(r0);
  g.c0 = static_cast<uint32_t>(c0 / unit);
  g.grid_cols = static_cast<uint32_t>(grid_cols);
  g.group_base = static_cast<uint32_t>(d.group_base);
  // Adjacent lanes hold runs (or every other vector), 16 elements apart: within a row a block covers
  // at most ceil(block_cols / 16) of them, and a step across a row boundary moves back by
  // cols − 16 columns, into another block column unless the row is narrower than block_cols + 16.
  g.stretch = static_cast<uint32_t>(d.cols >= block_cols + kRun ? std::min<uint64_t>(32, (block_cols + kRun - 1) / kRun) : 32);
  return true;
}

// Whole runs the vector loops take: none for kGeneral or when a pointer is not 16-byte aligned.
uint32_t runs_of(Mode mode, uint32_t count, const void* in, const void* codes) {
  const bool aligned = (reinterpret_cast<uintptr_t>(in) | reinterpret_cast<uintptr_t>(codes)) % 16 == 0;
  return mode == kGeneral || !aligned ? 0 : count / kRun;
}

// CTAs for a launch: as many as the GPU holds at once at the kernel's occupancy (the grid-stride
// loops then give every thread the same share with no partial second wave), fewer for a small
// chunk, never more than kFp8MaxCtas.
template <class Kernel>
cudaError_t ctas_for(Kernel kernel, uint32_t items, int& ctas) {
  int dev = 0, sms = 0, per_sm = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0);
  const int64_t wanted = (static_cast<int64_t>(items) + kThreads - 1) / kThreads;
  ctas = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({wanted, int64_t{sms} * per_sm, kFp8MaxCtas})));
  return e;
}

template <template <int, int> class Launch, class... Args>
cudaError_t dispatch(Fp8InputType type, Mode mode, Args... args) {
#define CKPT_FP8_CASE(T, M) \
  if (type == T && mode == M) return Launch<T, M>::run(args...);
  CKPT_FP8_CASE(kFp8InBF16, kSingle) CKPT_FP8_CASE(kFp8InBF16, kRuns)
  CKPT_FP8_CASE(kFp8InBF16, kVectors) CKPT_FP8_CASE(kFp8InBF16, kGeneral)
  CKPT_FP8_CASE(kFp8InF16, kSingle) CKPT_FP8_CASE(kFp8InF16, kRuns)
  CKPT_FP8_CASE(kFp8InF16, kVectors) CKPT_FP8_CASE(kFp8InF16, kGeneral)
  CKPT_FP8_CASE(kFp8InF32, kSingle) CKPT_FP8_CASE(kFp8InF32, kRuns)
  CKPT_FP8_CASE(kFp8InF32, kVectors) CKPT_FP8_CASE(kFp8InF32, kGeneral)
#undef CKPT_FP8_CASE
  return cudaErrorInvalidValue;
}

template <int Type, int M>
struct AmaxLaunch {
  static cudaError_t run(const void* in, Geo g, uint32_t count, uint32_t runs, unsigned* amax, cudaStream_t s) {
    int ctas = 0;
    const cudaError_t e = ctas_for(amax_kernel<Type, M>, runs ? runs : count, ctas);
    if (e != cudaSuccess) return e;
    amax_kernel<Type, M><<<ctas, kThreads, 0, s>>>(in, g, count, runs, amax);
    return cudaGetLastError();
  }
};

template <int Type, int M>
struct QuantizeLaunch {
  static cudaError_t run(const void* in, Geo g, uint32_t count, uint32_t runs, const float* scales, uint8_t* codes,
                         double* partials, int* ctas, cudaStream_t s) {
    const cudaError_t e = ctas_for(quantize_kernel<Type, M>, runs ? runs : count, *ctas);
    if (e != cudaSuccess) return e;
    quantize_kernel<Type, M><<<*ctas, kThreads, 0, s>>>(in, g, count, runs, scales, codes, partials);
    return cudaGetLastError();
  }
};

}  // namespace

cudaError_t fp8_amax_launch(const void* in, Fp8InputType type, const Fp8ChunkDesc& d, unsigned* amax_bits,
                            cudaStream_t stream) {
  Geo g{};
  Mode mode;
  if (!make_geo(d, g, mode)) return cudaErrorInvalidValue;
  if (d.count == 0) return cudaSuccess;
  const uint32_t count = static_cast<uint32_t>(d.count);
  return dispatch<AmaxLaunch>(type, mode, in, g, count, runs_of(mode, count, in, nullptr), amax_bits, stream);
}

cudaError_t fp8_quantize_launch(const void* in, Fp8InputType type, const Fp8ChunkDesc& d, const float* scales,
                                uint8_t* codes, double* partials, int* ctas, cudaStream_t stream) {
  Geo g{};
  Mode mode;
  *ctas = 0;
  if (!make_geo(d, g, mode)) return cudaErrorInvalidValue;
  if (d.count == 0) return cudaSuccess;
  const uint32_t count = static_cast<uint32_t>(d.count);
  return dispatch<QuantizeLaunch>(type, mode, in, g, count, runs_of(mode, count, in, codes), scales, codes,
                                  partials, ctas, stream);
}

}  // namespace ckpt::cuda
