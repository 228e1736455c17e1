#include "runtime/linear_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "ops/int4_math.h"
#include "runtime/dependent_launch.h"

namespace ckpt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;  // skinny_elementwise_kernel: one output row per warp

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

// The Linears of one launch (kernel parameter), all on the same x (so the same k): job j owns
// blocks [first_block[j], first_block[j + 1]), block i of a job its rows [i * rows_per_block,
// (i + 1) * rows_per_block). span: skinny_kernel's threads per row group (S). With `pairs`
// (SkinnyFusion::silu_pairs) the blocks tile job 0 (gate) only, job 1 (up) owns none, and a block
// computes the same rows of both. `norm` (SkinnyFusion::norm): x is the residual stream, the
// input of every job RMSNorm(x) with this weight and eps.
struct SkinnyJobs {
  SkinnyJob job[kSkinnyMaxJobs];
  unsigned first_block[kSkinnyMaxJobs + 1];
  int count;
  bool accumulate, pairs;
  uint32_t rows_per_block, span;
  const float* norm;
  float eps;
};

// This block's job (copied by constant index: a kernel parameter indexed at run time would be
// copied to local memory) and the first row of its tile.
__device__ __forceinline__ uint64_t block_job(const SkinnyJobs& jobs, SkinnyJob* job) {
  static_assert(kSkinnyMaxJobs == 3, "block_job selects among three jobs");
  const unsigned b = blockIdx.x;
  const int i = jobs.count > 2 && b >= jobs.first_block[2] ? 2 : jobs.count > 1 && b >= jobs.first_block[1] ? 1 : 0;
  *job = i == 0 ? jobs.job[0] : i == 1 ? jobs.job[1] : jobs.job[2];
  return uint64_t(b - (i == 0 ? 0u : i == 1 ? jobs.first_block[1] : jobs.first_block[2])) * jobs.rows_per_block;
}

// ---- linear_skinny: the decode GEMV ----------------------------------------------------------
//
// A batch-1 decode step reads every weight byte once and does 2 flops per weight (m = 1), so it
// runs at HBM speed only if the kernel keeps enough bytes in flight on every SM: by Little's law
// 3.35 TB/s x ~0.6-0.8 us of DRAM latency under load is ~2-2.7 MB across an H100's 132 SMs,
// 16-20 KB per SM as the bare minimum; this kernel aims at 64 KB and more. One warp per output
// row (the previous design) had one 16-byte load per lane and row in flight, and re-read the
// float32 activations x (2-4 times the weight's bytes) in every warp for every row.
//
// Work decomposition. A block (kThreads = 256 threads) owns a tile of G x R consecutive output
// rows of one job (R = kTileRows<E, MAXM> rows a thread, G row groups of S threads, G = 256 / S)
// and walks the whole of k:
//
//                  chunk c = 16 bytes = P elements (P = 4 f32, 8 f16/bf16, 16 FP8, 32 INT4)
//           k ->   c=0    c=1    ...   c=S-1   c=S    c=S+1  ...
//   row0         | t0   | t1   | ... | tS-1  | t0   | t1   | ...      group 0: threads 0 .. S-1,
//   ...          |  (the same threads on each of the R rows)  |      each on R rows at once
//   row0 + R-1   | t0   | t1   | ... | tS-1  | t0   | t1   | ...
//   row0 + R     | tS   | tS+1 | ... | t2S-1 | tS   | ...            group 1: threads S .. 2S-1
//   ...
//
// Thread p of a group takes chunks p, p + S, p + 2S, ... of its R rows: one 16-byte load per row
// per chunk, coalesced across the warp (32 consecutive chunks of a row are 512 contiguous bytes).
// S is the smallest of 32, 64, 128, 256 that leaves no thread more than two chunks (span_for), so
// a thread has its next chunk in flight while it computes one wherever the row is long enough,
// and a short row (the tiny test models) still keeps most of the block busy. Each float4 of x a
// thread loads (from L1: every block of the SM reads the same x, and the weight loads do not
// allocate there) serves its R rows, and each decoded weight serves the m rows of x. x is not
// staged in shared memory: a block's threads split k, so the block reads each element of x once
// anyway, and a staged copy would add a pass and a barrier without saving a load.
//
// Bytes in flight: a thread issues the R loads of its next chunk before the FMAs of the current
// one (register double buffering: `cur` / `nxt` in the loop), so it has up to 2 x R x 16 = 128
// bytes outstanding (R = 4 up to m = 4), 32 KB a block. At m <= 2, __launch_bounds__(256, 2)
// keeps at least two blocks resident per SM; ptxas for sm_90 gives m = 1 64 registers a thread
// for f32 / f16 / bf16 (four blocks an SM), 64 for FP8 (four: kMinBlocks) and 96 for INT4 (two), so an SM
// has 64-128 KB requested at any time, and while one block reduces and writes, the others' loads
// stream. Llama-3-8B shapes at m = 1 (k = 4096): bf16 rows are 512 chunks (S = 256, 2 chunks a
// thread, the block's 4 rows x 8 KB = 32 KB requested at once); FP8 rows 256 chunks (S = 128, two
// groups: 8 rows x 4 KB a block); down_proj (k = 14336) 7 chunks a thread in bf16, 3-4 in FP8.
//
// Enough blocks: a block owns G x R rows (4 for bf16 at m = 1, 8 for FP8), so the k / v
// projections of an 8B model (n = 1024) give 256 / 128 blocks on their own and 1536 / 768 with q
// in the fused launch, several per SM on 132 SMs: no split-k is needed, and every output is one
// block's sum in a fixed order (deterministic, and independent of m, of the job count and of the
// tile height R: each (row, x row) pair is summed over the same chunks by the same thread
// position, then over the warp by a fixed butterfly, then over the group's warps in index order).
//
// Numerics: float32 FMAs of the dequantized weights (exact: f16/bf16/E4M3 widen exactly) with
// float32 x; INT4 factors its scale and zero out of each chunk's sum (int4_chunk_fma). FP8 per-tensor and per-channel
// weights take the dot product of the E4M3 values and multiply by the row's scale once after the
// reduction; block scales multiply each chunk's values (a chunk lies in one block). The
// conversion E4M3 -> f16 is the hardware's paired cvt (two codes per instruction, exact: every
// E4M3 value is an f16), then f16 -> f32 (exact).
//
// Fusions (SkinnyFusion, the one-rank decode step's q/k/v, gate/up and lm_head launches). A
// decode step normalised the residual with a kernel of its own before each of these GEMVs and ran
// SiLU(gate) * up as another after gate/up: three launches a layer whose work is a few KB
// (hidden = 4096 floats a row), but each costs a kernel boundary on the step's critical path (the
// tail of one grid, the programmatic wait, the first loads of the next: ~23 us a layer for all
// the non-GEMV kernels of an 8B model, BENCHMARKS.md 2026-12-07 16:05) and a round trip of its
// output through global memory. Folded in here:
//  - RMSNorm (NORM): x is the residual row h and the norm weight g is read beside it, so each
//    float4 of x a thread loads becomes h * g in registers (one more float4 load from L1, shared
//    by the R rows and the m rows of x, and one FMUL an element), and y = (W (h * g)) / rms(h),
//    the division one multiply per output after the reduction: exact up to float32 reassociation.
//    Sum h^2 needs no pass of its own: a row group's threads load every chunk of x exactly once
//    (thread p chunks p, p + S, ...), so each thread adds the squares of the elements it loads
//    anyway (one FFMA an element and row of x, against R FFMAs and R decodes of the weights), and
//    the group's sum joins the dot products' reduction (the same butterfly, MAXM more slots of
//    warp_sums). Every group of every block computes it again, redundantly: 4096 FFMAs a row of
//    x spread over the group, no loads beyond the ones it makes anyway and no barrier, where a
//    norm kernel costs a launch boundary and writes x for the GEMV to read back. Issue slots:
//    the square and the multiply are per element of x, shared by the thread's R rows, so at
//    m = 1 and R = 4 they add 0.5 instructions per weight element to the ~1.5 (bf16: an FFMA
//    and half a decode) to ~3.3 (INT4: LOP3, FADD, FFMA and the zero term) of the unfused loop;
//    HBM delivers ~7 bf16 or ~29 INT4 elements a clock to an SM (3.35 TB/s over 132 SMs at
//    1.75 GHz) against 128 lanes of issue, so bf16 and FP8 stay far from issue-bound and INT4
//    would go from ~75 % to ~85 % of it: measured slower, INT4 and FP8 are not fused (skinny_fusable). The sum is the
//    same chunks by the same thread positions in the same order in every group and block (it
//    depends on S, so on k and the format, only): deterministic, the same bytes at any grid; in
//    float32 (double would put a conversion an element on the 16-a-clock conversion unit: an
//    error of a few float32 ulps of the 1/rms, far below the tests' tolerance).
//  - SiLU * up (pairs): a thread's R rows are R / 2 rows of gate and the same R / 2 rows of up
//    (the row set's second half points at job 1 instead of this job's next R / 2 rows), so the
//    thread that finishes gate row n also holds up row n and writes silu(gate) * up straight into
//    the activations (job 0's y, [m][n]): no gate / up outputs written and read back, no kernel.
//    Tiles, bytes in flight and blocks are unchanged (a block's G x R rows are G x R / 2 pairs, and
//    gate + up have twice the rows of either); every output is summed exactly as without pairs, and
//    the SiLU is silu_mul's expression, so the activations are the unfused path's bit for bit.

// 16 bytes of a weight row: ld.global.nc (the read-only path: the weights do not change during
// the kernel) with L1::no_allocate, so the stream of weight bytes, each used once, does not evict
// the activations every block of the SM re-reads from L1, and L2::256B, so an L2 miss fetches the
// 256 bytes around it from DRAM (a warp reads 512 contiguous bytes of a row per load).
// https://docs.nvidia.com/cuda/parallel-thread-execution/#data-movement-and-conversion-instructions-ld
__device__ __forceinline__ uint4 load_weight16(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// Rows a thread (and a row group) carries per chunk: 16 bytes each, and R x MAXM accumulators;
// at m > 4 fewer rows leave registers for the x of every row.
template <WeightElem E, int MAXM>
constexpr int kTileRows = MAXM <= 4 ? 4 : 2;
// Blocks an SM must hold at once (__launch_bounds__' second argument). FP8 at m = 1 asks for four,
// which makes ptxas fit its decode in 64 registers as the 16-bit weights' does (79 otherwise:
// three blocks an SM). Measured on an H100 (BENCHMARKS.md, 2026-12-07 16:30): an FP8 o_proj
// [4096 x 4096] went from 0.52 to 0.62 of the read kernel and down_proj from 0.74 to 0.79, because
// its 512 blocks of 8 rows are 1.3 waves of three blocks an SM and under one wave of four.
// With the RMSNorm folded in (NORM, "Fusions" above) the 16-bit and f32 decode at m = 1 asks for
// four, so the fused q/k/v and gate/up keep the occupancy of the unfused launches: ptxas for sm_90
// fits x * g and the squares in 64 registers (71-72 unbounded: three blocks an SM), no spill but
// 8 bytes with pairs (f16 / bf16). FP8 and INT4 are not fused (skinny_fusable says why).
template <WeightElem E, int MAXM, bool NORM>
constexpr int kMinBlocks = MAXM > 2                     ? 1
                           : MAXM == 2                  ? 2
                           : E == WeightElem::kE4M3     ? 4
                           : E == WeightElem::kInt4     ? 2
                           : NORM                       ? 4
                                                        : 2;
constexpr uint64_t kMaxTileRows = 8;

// One chunk of a thread's R rows in registers: the raw 16 bytes per row, and for FP8 block scales
// / INT4 its scale (and zero) per row.
template <int R>
struct Chunk {
  uint4 raw[R];
  float scale[R];
  uint32_t zero[R];
};

// Where a thread's rows live: the first row, the byte offset of each row from it (32 bits:
// skinny_vectorized bounds the row bytes), how many of the R rows exist (rows past the job's last
// row are neither read nor written), and for FP8 block scales / INT4 groups the index of each
// row's first scale (and zero). Offsets and indices, not pointers: half the registers. With
// PAIRS, rows R/2 .. R - 1 are up's: the same R/2 rows of another weight, from a second first row
// (first[1]) at the same offsets; `rows` counts the rows of either half.
template <int R, bool PAIRS>
struct RowSet {
  static constexpr int kBases = PAIRS ? 2 : 1, kOffsets = PAIRS ? R / 2 : R;
  const uint4* first[kBases];
  uint32_t offset[kOffsets];
  uint32_t scale_at[R];
  uint32_t rows;
  // Whether row r exists.
  __device__ __forceinline__ bool has(int r) const { return static_cast<uint32_t>(r % kOffsets) < rows; }
};

// Requests chunk c of the rows of `w` (and its per-chunk scales): the loads the next iteration
// uses. With PAIRS the second half of the rows comes from rs.first[1] (up's weight, same layout);
// pairs are f32 / f16 / bf16 only (skinny_fusable), so the scaled formats read `w`'s scales.
template <WeightElem E, int R, bool PAIRS>
__device__ __forceinline__ void load_chunk(const LinearView& w, const RowSet<R, PAIRS>& rs, uint32_t c, Chunk<R>* ch) {
  constexpr int H = R / 2;
#pragma unroll
  for (int r = 0; r < R; ++r)
    if (rs.has(r))
      ch->raw[r] = load_weight16(reinterpret_cast<const uint4*>(
          reinterpret_cast<const uint8_t*>(rs.first[PAIRS && r >= H ? 1 : 0] + c) + rs.offset[PAIRS ? r % H : r]));
  if constexpr (E == WeightElem::kE4M3 || E == WeightElem::kInt4)
    static_assert(!PAIRS, "FP8 and INT4 are never fused (skinny_fusable)");
  if constexpr (E == WeightElem::kE4M3) {
    if (w.scale_kind == ScaleKind::kBlock) {
      const uint32_t b = c / static_cast<uint32_t>(w.block_k / kPerLoad<E>);
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (rs.has(r)) ch->scale[r] = __ldg(w.scale + rs.scale_at[r] + b);
    }
  } else if constexpr (E == WeightElem::kInt4) {
    const uint32_t g = c / static_cast<uint32_t>(w.group / kPerLoad<E>);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (rs.has(r)) {
        ch->scale[r] = __ldg(w.group_scale + rs.scale_at[r] + g);
        ch->zero[r] = __ldg(w.group_zero + rs.scale_at[r] + g);
      }
    }
  }
}

// Float4 q of the chunk at xc of each of the m rows of x (row stride k): as stored, or with NORM
// (x the residual stream) times the RMSNorm weight's float4 q of the chunk at gc, after adding the
// squares of the stored values to ssq (the 1/rms multiplies the outputs after the reduction).
template <bool NORM, int MAXM>
__device__ __forceinline__ void load_x4(const float* xc, const float* gc, uint64_t k, int m, int q,
                                        float4 (&xs)[MAXM], float (&ssq)[MAXM]) {
  float4 g;
  if constexpr (NORM) g = __ldg(reinterpret_cast<const float4*>(gc) + q);
#pragma unroll
  for (int i = 0; i < MAXM; ++i) {
    if (i < m) {
      float4 v = __ldg(reinterpret_cast<const float4*>(xc + i * k) + q);
      if constexpr (NORM) {
        ssq[i] = fmaf(v.x, v.x, ssq[i]);
        ssq[i] = fmaf(v.y, v.y, ssq[i]);
        ssq[i] = fmaf(v.z, v.z, ssq[i]);
        ssq[i] = fmaf(v.w, v.w, ssq[i]);
        v = make_float4(v.x * g.x, v.y * g.y, v.z * g.z, v.w * g.w);
      }
      xs[i] = v;
    }
  }
}

// Elements 4q .. 4q + 3 of row r's chunk as float32: weight_at's values (FP8 per-tensor and
// per-channel without their scale, applied after the reduction).
template <WeightElem E, int R>
__device__ __forceinline__ float4 decode4(const LinearView& w, const Chunk<R>& ch, int r, int q) {
  const uint4& raw = ch.raw[r];
  const uint32_t u[4] = {raw.x, raw.y, raw.z, raw.w};
  if constexpr (E == WeightElem::kF32) {
    return make_float4(__uint_as_float(u[0]), __uint_as_float(u[1]), __uint_as_float(u[2]), __uint_as_float(u[3]));
  } else if constexpr (E == WeightElem::kBF16) {
    const uint32_t a = u[2 * q], b = u[2 * q + 1];
    return make_float4(__uint_as_float(a << 16), __uint_as_float(a & 0xFFFF0000u), __uint_as_float(b << 16),
                       __uint_as_float(b & 0xFFFF0000u));
  } else if constexpr (E == WeightElem::kF16) {
    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&u[2 * q]));
    const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&u[2 * q + 1]));
    return make_float4(a.x, a.y, b.x, b.y);
  } else {
    static_assert(E == WeightElem::kE4M3, "INT4 chunks go through int4_chunk_fma");
    const uint32_t v = u[q];
    const float2 a = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(v & 0xFFFFu), __NV_E4M3)));
    const float2 b = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(v >> 16), __NV_E4M3)));
    if (w.scale_kind != ScaleKind::kBlock) return make_float4(a.x, a.y, b.x, b.y);
    const float s = ch.scale[r];
    return make_float4(a.x * s, a.y * s, b.x * s, b.y * s);
  }
}

// The FP8 scale left out of decode4 (per tensor, per channel), taken once per output.
template <WeightElem E>
__device__ __forceinline__ float row_scale(const LinearView& w, uint64_t n) {
  if constexpr (E == WeightElem::kE4M3) {
    if (w.scale_kind == ScaleKind::kTensor) return w.scale[0];
    if (w.scale_kind == ScaleKind::kChannel) return w.scale[n];
  }
  return 1.0f;
}

// INT4: one chunk (32 elements of each of the R rows, in one group: skinny_vectorized asks for
// group % 32 == 0) as s (sum_k q_k x_k - z sum_k x_k), which is sum_k (q_k - z) s x_k. Converting
// each (q - z) with I2F capped this kernel at the conversion unit's 16 results a clock per SM,
// about half the rate at which HBM delivers INT4 elements at m = 1 (0.30-0.45 of the read kernel,
// BENCHMARKS.md 2026-12-07). Here the codes become floats on the full-rate pipes: nibble t of a
// 16-bit half of a word, masked in place and OR'ed into the mantissa of 2^23, is the float
// 2^23 + q 16^t exactly (q 16^t < 2^16), one FADD leaves q 16^t, and it meets x 16^-t (x scaled
// once per chunk, for all R rows; powers of two, exact): LOP3, FADD, FFMA per element and row.
// The zero term costs one FMA per row and chunk with sum_k x_k, which the R rows share. Rounding:
// float32 sums in another order than (q - z) s x, within linear_skinny's float32 bound
// (tests/gpu/test_gpu_forward.cpp SkinnyKernel...). xc: the chunk's x (INT4 is never fused).
template <int R, int MAXM>
__device__ __forceinline__ void int4_chunk_fma(const Chunk<R>& ch, const float* xc, uint64_t k, int m,
                                               float (&acc)[R][MAXM]) {
  float d[R][MAXM], xsum[MAXM];
#pragma unroll
  for (int i = 0; i < MAXM; ++i) {
    xsum[i] = 0.0f;
#pragma unroll
    for (int r = 0; r < R; ++r) d[r][i] = 0.0f;
  }
  // Word j of the rows (elements 8j .. 8j + 7), unrolled whole only at m <= 2: with more rows of x
  // the hoisted float4 loads of all eight quads would exceed the registers.
  constexpr int kWordUnroll = MAXM <= 2 ? 4 : 1;
#pragma unroll kWordUnroll
  for (int j = 0; j < 4; ++j) {
    uint32_t word[R];
#pragma unroll
    for (int r = 0; r < R; ++r)
      word[r] = j == 0 ? ch.raw[r].x : j == 1 ? ch.raw[r].y : j == 2 ? ch.raw[r].z : ch.raw[r].w;
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // elements 8j + 4 half .. + 3: nibbles 0-3 of that half
      float4 xs[MAXM];
      float no_squares[MAXM];  // load_x4 adds to them only when it normalises
      load_x4<false, MAXM>(xc, nullptr, k, m, 2 * j + half, xs, no_squares);
#pragma unroll
      for (int i = 0; i < MAXM; ++i) {
        if (i < m) {
          xsum[i] += (xs[i].x + xs[i].y) + (xs[i].z + xs[i].w);
          xs[i].y *= 0x1p-4f;
          xs[i].z *= 0x1p-8f;
          xs[i].w *= 0x1p-12f;
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint32_t h = half ? word[r] >> 16 : word[r];
        const float f0 = __uint_as_float((h & 0xFu) | 0x4B000000u) - 0x1p23f;
        const float f1 = __uint_as_float((h & 0xF0u) | 0x4B000000u) - 0x1p23f;
        const float f2 = __uint_as_float((h & 0xF00u) | 0x4B000000u) - 0x1p23f;
        const float f3 = __uint_as_float((h & 0xF000u) | 0x4B000000u) - 0x1p23f;
#pragma unroll
        for (int i = 0; i < MAXM; ++i) {
          if (i < m) {
            d[r][i] = fmaf(f0, xs[i].x, d[r][i]);
            d[r][i] = fmaf(f1, xs[i].y, d[r][i]);
            d[r][i] = fmaf(f2, xs[i].z, d[r][i]);
            d[r][i] = fmaf(f3, xs[i].w, d[r][i]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < MAXM; ++i)
      if (i < m) acc[r][i] = fmaf(ch.scale[r], fmaf(-static_cast<float>(ch.zero[r]), xsum[i], d[r][i]), acc[r][i]);
}

template <WeightElem E, int MAXM, bool NORM, bool PAIRS>
__global__ void __launch_bounds__(kThreads, kMinBlocks<E, MAXM, NORM>) skinny_kernel(SkinnyJobs jobs, const float* __restrict__ x, int m) {
  constexpr int R = kTileRows<E, MAXM>, H = R / 2, P = kPerLoad<E>, kWarpsPerBlock = kThreads / 32;
  static_assert(R * MAXM <= 32, "the block's G x R x MAXM outputs are written by one thread each");
  static_assert(R <= kMaxTileRows, "skinny_vectorized bounds the row offsets of kMaxTileRows rows");
  static_assert(R % 2 == 0, "pairs split a thread's rows in two halves");
  // Per warp: the R x MAXM dot products, then (NORM) the MAXM sums of squares of x.
  constexpr int kSlots = R * MAXM + (NORM ? MAXM : 0);
  __shared__ float warp_sums[kWarpsPerBlock][kSlots];
  // With PAIRS the blocks tile job 0 (gate) and the second half of a thread's rows is job 1's (up);
  // else the block's job and its tile, both halves of that job.
  SkinnyJob job;
  const uint64_t tile0 = PAIRS ? uint64_t(blockIdx.x) * jobs.rows_per_block : block_job(jobs, &job);
  if constexpr (PAIRS) job = jobs.job[0];
  const SkinnyJob& second = PAIRS ? jobs.job[1] : job;
  const LinearView& w = job.w;
  const uint32_t S = jobs.span, t = threadIdx.x, group = t / S, p = t % S;
  constexpr uint32_t kGroupRows = PAIRS ? H : R;  // rows of job 0 a group finishes
  const uint64_t row0 = tile0 + uint64_t(group) * kGroupRows;
  const uint32_t chunks = static_cast<uint32_t>(w.k / P);

  RowSet<R, PAIRS> rs;
  rs.first[0] = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.w) + min(row0, w.n - 1) * w.row_bytes);
  if constexpr (PAIRS)
    rs.first[1] = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(second.w.w) + min(row0, w.n - 1) * w.row_bytes);
  rs.rows = row0 < w.n ? static_cast<uint32_t>(min(uint64_t(kGroupRows), w.n - row0)) : 0;
#pragma unroll
  for (int r = 0; r < RowSet<R, PAIRS>::kOffsets; ++r) rs.offset[r] = static_cast<uint32_t>(r * w.row_bytes);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const uint64_t row = row0 + (PAIRS ? r % H : r);
    if constexpr (E == WeightElem::kE4M3) {
      if (w.scale_kind == ScaleKind::kBlock)
        rs.scale_at[r] = static_cast<uint32_t>(row / w.block_n * ((w.k + w.block_k - 1) / w.block_k));
    } else if constexpr (E == WeightElem::kInt4) {
      rs.scale_at[r] = static_cast<uint32_t>(row * w.groups);
    }
  }

  float acc[R][MAXM], ssq[MAXM];
#pragma unroll
  for (int i = 0; i < MAXM; ++i) {
    ssq[i] = 0.0f;
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r][i] = 0.0f;
  }

  // A group entirely past the job's last row loads nothing (it still joins the reduction's barrier).
  uint32_t c = rs.rows ? p : chunks;
  Chunk<R> cur = {}, nxt = {};  // a row past the last keeps zeros (never written out)
  // The first chunk is weights only: requested before the wait for the kernel that writes x (and
  // y, when accumulating), so under programmatic dependent launch it streams while that kernel
  // finishes (runtime/dependent_launch.h).
  allow_dependent_launch();
  if (c < chunks) load_chunk<E, R, PAIRS>(w, rs, c, &cur);
  wait_for_previous_kernel();
  for (; c < chunks; c += S) {
    if (c + S < chunks) load_chunk<E, R, PAIRS>(w, rs, c + S, &nxt);  // in flight during this chunk's FMAs
    const float* xc = x + uint64_t(c) * P;
    const float* gc = NORM ? jobs.norm + uint64_t(c) * P : nullptr;
    if constexpr (E == WeightElem::kInt4) {
      int4_chunk_fma<R, MAXM>(cur, xc, w.k, m, acc);
    } else {
#pragma unroll
      for (int q = 0; q < P / 4; ++q) {
        float4 xs[MAXM];
        load_x4<NORM, MAXM>(xc, gc, w.k, m, q, xs, ssq);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float4 v = decode4<E, R>(w, cur, r, q);
#pragma unroll
          for (int i = 0; i < MAXM; ++i) {
            if (i < m) {
              acc[r][i] = fmaf(v.x, xs[i].x, acc[r][i]);
              acc[r][i] = fmaf(v.y, xs[i].y, acc[r][i]);
              acc[r][i] = fmaf(v.z, xs[i].z, acc[r][i]);
              acc[r][i] = fmaf(v.w, xs[i].w, acc[r][i]);
            }
          }
        }
      }
    }
    cur = nxt;
  }

  // Reduction: over the warp (butterfly), then over the group's S / 32 warps in index order.
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < MAXM; ++i) {
      const float s = warp_sum(acc[r][i]);
      if (t % 32 == 0) warp_sums[t / 32][r * MAXM + i] = s;
    }
  if constexpr (NORM) {
#pragma unroll
    for (int i = 0; i < MAXM; ++i) {
      const float s = warp_sum(ssq[i]);
      if (t % 32 == 0) warp_sums[t / 32][R * MAXM + i] = s;
    }
  }
  __syncthreads();
  // One thread per output (with pairs: per gate / up pair) of the group's rows.
  const uint32_t groups = kThreads / S, warps = S / 32, outs = kGroupRows * MAXM;
  if (t >= groups * outs) return;
  const uint32_t g = t / outs, o = t % outs, r = o / MAXM, i = o % MAXM;
  const uint64_t n = tile0 + uint64_t(g) * kGroupRows + r;
  if (static_cast<int>(i) >= m || n >= w.n) return;
  const float* sums = &warp_sums[g * warps][0];
  float inv_rms = 1.0f;
  if constexpr (NORM) {
    float ss = 0.0f;
    for (uint32_t v = 0; v < warps; ++v) ss += sums[v * kSlots + R * MAXM + i];
    inv_rms = static_cast<float>(1.0 / sqrt(double(ss) / double(w.k) + jobs.eps));  // as rms_norm_rows
  }
  // Output n of x row i from slot (row) rr of the group's sums: its FP8 scale, 1/rms and bias.
  // One rounding of the product and the bias (an explicit fmaf: the same in every branch).
  auto finish = [&](const SkinnyJob& jb, uint32_t rr) {
    float s = 0.0f;
    for (uint32_t v = 0; v < warps; ++v) s += sums[v * kSlots + rr * MAXM + i];
    return fmaf(s, row_scale<E>(jb.w, n) * inv_rms, jb.bias ? jb.bias[n] : 0.0f);
  };
  float* out = job.y + uint64_t(i) * w.n + n;
  if constexpr (PAIRS) {
    const float gate = finish(job, r), up = finish(second, r + H);
    *out = gate / (1.0f + expf(-gate)) * up;  // silu_mul's expression (forward_kernels.cu)
    return;
  }
  const float s = finish(job, r);
  *out = jobs.accumulate ? *out + s : s;
}

// Any layout, element by element (weight_at): one warp per output row.
__global__ void __launch_bounds__(kThreads) skinny_elementwise_kernel(SkinnyJobs jobs, const float* __restrict__ x,
                                                                      int m) {
  SkinnyJob job;
  const uint64_t n = block_job(jobs, &job) + threadIdx.x / 32;
  if (n >= job.w.n) return;
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

template <WeightElem E, int MAXM>
cudaError_t launch_tiles(SkinnyJobs jobs, const float* x, int m, cudaStream_t s) {
  // With pairs a group's R rows are R / 2 of gate and the same R / 2 of up: the blocks tile gate.
  jobs.rows_per_block = kThreads / jobs.span * kTileRows<E, MAXM> / (jobs.pairs ? 2 : 1);
  for (int j = 0; j < jobs.count; ++j) {
    const uint64_t n = jobs.pairs && j > 0 ? 0 : jobs.job[j].w.n;
    jobs.first_block[j + 1] = jobs.first_block[j] + static_cast<unsigned>((n + jobs.rows_per_block - 1) / jobs.rows_per_block);
  }
  // A programmatic dependent of the kernel before it (runtime/dependent_launch.h): its blocks may
  // start, and request their first weights, before that kernel has finished.
  // Pairs come with the norm (skinny_fusable): the decode step's one use of them.
  void (*kernel)(SkinnyJobs, const float*, int) = skinny_kernel<E, MAXM, false, false>;
  if constexpr (E != WeightElem::kInt4 && E != WeightElem::kE4M3)  // never fused (skinny_fusable)
    if (jobs.norm) kernel = jobs.pairs ? skinny_kernel<E, MAXM, true, true> : skinny_kernel<E, MAXM, true, false>;
  return launch_dependent(kernel, jobs.first_block[jobs.count], kThreads, 0, s, jobs, x, m);
}

// The row-group width S for rows of `chunks` 16-byte loads: the smallest of 32 .. kThreads that
// gives no thread more than two chunks, so that a thread has a next chunk in flight while it
// computes one wherever the block is wide enough.
uint32_t span_for(uint64_t chunks) {
  uint32_t s = 32;
  while (s < kThreads && 2 * uint64_t(s) < chunks) s *= 2;
  return s;
}

template <WeightElem E>
cudaError_t launch_skinny(SkinnyJobs& jobs, const float* x, int m, cudaStream_t s) {
  jobs.span = span_for(jobs.job[0].w.k / kPerLoad<E>);
  if (m == 1) return launch_tiles<E, 1>(jobs, x, m, s);
  if (m == 2) return launch_tiles<E, 2>(jobs, x, m, s);
  if (m <= 4) return launch_tiles<E, 4>(jobs, x, m, s);
  return launch_tiles<E, 8>(jobs, x, m, s);
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
  // skinny_kernel's 32-bit chunk indices (c + S does not wrap), row offsets within a tile and
  // scale indices.
  if (w.k / p > INT32_MAX || w.row_bytes > UINT32_MAX / kMaxTileRows) return false;
  if (w.elem == WeightElem::kE4M3 && w.scale_kind == ScaleKind::kBlock &&
      (w.block_k % p != 0 || (w.n + w.block_n - 1) / w.block_n * ((w.k + w.block_k - 1) / w.block_k) > UINT32_MAX))
    return false;
  if (w.elem == WeightElem::kInt4 && (w.g_idx != nullptr || w.group % p != 0 || w.n * w.groups > UINT32_MAX)) return false;
  return true;
}

namespace {

// The skinny_kernel launch (16-byte loads) when `vectorized`, else the element-wise kernel, which
// takes no fusion (the callers check).
cudaError_t launch_jobs(const SkinnyJob* job, int count, const float* x, uint64_t m, bool accumulate,
                        const SkinnyFusion& fuse, bool vectorized, cudaStream_t stream) {
  SkinnyJobs jobs{};
  jobs.count = count;
  jobs.accumulate = accumulate;
  jobs.pairs = fuse.silu_pairs;
  jobs.norm = fuse.norm;
  jobs.eps = fuse.eps;
  uint64_t rows = 0;
  for (int j = 0; j < count; ++j) {
    jobs.job[j] = job[j];
    rows += job[j].w.n;
  }
  if (m == 0 || rows == 0) return cudaSuccess;
  const int mi = static_cast<int>(m);
  if (!vectorized) {
    jobs.rows_per_block = kWarps;
    for (int j = 0; j < count; ++j)
      jobs.first_block[j + 1] = jobs.first_block[j] + static_cast<unsigned>((job[j].w.n + kWarps - 1) / kWarps);
    skinny_elementwise_kernel<<<jobs.first_block[count], kThreads, 0, stream>>>(jobs, x, mi);
    return cudaGetLastError();
  }
  switch (job[0].w.elem) {
    case WeightElem::kF32: return launch_skinny<WeightElem::kF32>(jobs, x, mi, stream);
    case WeightElem::kF16: return launch_skinny<WeightElem::kF16>(jobs, x, mi, stream);
    case WeightElem::kBF16: return launch_skinny<WeightElem::kBF16>(jobs, x, mi, stream);
    case WeightElem::kE4M3: return launch_skinny<WeightElem::kE4M3>(jobs, x, mi, stream);
    case WeightElem::kInt4: return launch_skinny<WeightElem::kInt4>(jobs, x, mi, stream);
  }
  return cudaErrorInvalidValue;
}

// Jobs skinny_kernel takes in one launch: 1 .. kSkinnyMaxJobs on one k and format, each with
// 16-byte loads.
bool one_vectorized_launch(const SkinnyJob* job, int count, const float* x) {
  if (count < 1 || count > kSkinnyMaxJobs) return false;
  for (int j = 0; j < count; ++j)
    if (job[j].w.k != job[0].w.k || job[j].w.elem != job[0].w.elem || !skinny_vectorized(job[j].w, x)) return false;
  return true;
}

}  // namespace

cudaError_t linear_skinny_jobs(const SkinnyJob* job, int count, const float* x, uint64_t m, bool accumulate,
                               cudaStream_t stream, bool element_wise) {
  if (count < 1 || count > kSkinnyMaxJobs || m > kSkinnyMaxRows) return cudaErrorInvalidValue;
  for (int j = 0; j < count; ++j)
    if (job[j].w.k != job[0].w.k) return cudaErrorInvalidValue;  // one x for all
  return launch_jobs(job, count, x, m, accumulate, SkinnyFusion{}, !element_wise && one_vectorized_launch(job, count, x),
                     stream);
}

bool skinny_fusable(const SkinnyJob* job, int count, const float* x, const SkinnyFusion& fuse) {
  if (!one_vectorized_launch(job, count, x)) return false;
  // FP8 and INT4 are not fused: measured on two H100s (BENCHMARKS.md, 2026-12-07 22:28 and 23:29),
  // the fused GEMVs lose more than the norm and SiLU kernels cost. INT4's loop is issue-bound
  // already (~3.3 instructions a weight element, "Fusions" above): fused q/k/v ran at 0.19 of the
  // read kernel against 0.31 and gate/up + SiLU at 0.26 against 0.47, an 8B-shaped step 2.33x its
  // floor against 1.95x. FP8 fused needs 76-77 registers (three blocks an SM) or spills at four:
  // q/k/v 0.51 against 0.61-0.63, gate/up 0.72 against 0.90-0.92, the step 1.207-1.217 ms against
  // 1.184 (1.210 against 1.203 on the second machine; four blocks with spills: 1.243).
  if (job[0].w.elem == WeightElem::kInt4 || job[0].w.elem == WeightElem::kE4M3) return false;
  if (fuse.norm && reinterpret_cast<uintptr_t>(fuse.norm) % 16 != 0) return false;  // read as float4
  if (!fuse.silu_pairs) return true;
  if (!fuse.norm) return false;  // pairs come with the norm: the decode step's one use of them
  // Pairs: the row set's two halves share the offsets and scale indices of one layout.
  const LinearView &g = job[0].w, &u = job[1].w;
  return count == 2 && job[0].y != nullptr && g.n == u.n && g.row_bytes == u.row_bytes && g.scale_kind == u.scale_kind &&
         g.block_n == u.block_n && g.block_k == u.block_k && g.group == u.group && g.groups == u.groups;
}

cudaError_t linear_skinny_fused(const SkinnyJob* job, int count, const float* x, uint64_t m, const SkinnyFusion& fuse,
                                cudaStream_t stream) {
  if (m > kSkinnyMaxRows || !skinny_fusable(job, count, x, fuse)) return cudaErrorInvalidValue;
  return launch_jobs(job, count, x, m, false, fuse, true, stream);
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
