// FP8 (E4M3FN) weight quantization with scales, as vLLM's fp8 and compressed-tensors loaders read them.
//
// Every scheme is a grid of blocks over a [rows, cols] = [N, K] weight: per-tensor is one block
// of the whole matrix, per-channel is blocks of one row ([1, K]), block is bn × bk tiles (edge
// tiles may be partial). For each block, exactly (so any two implementations agree bit for bit):
//   amax  = max |x| over the block, in float32;
//   scale = amax / 448 (float32 division), or 1.0 when amax is 0, then rounded (RNE) to the dtype
//           the scale is stored in (F32, BF16 or F16); that stored value is the divisor. A scale
//           that would round to 0 (amax below ~448 × the dtype's smallest value) becomes the
//           dtype's smallest positive value instead, so no code is ever NaN;
//   code  = E4M3FN(clamp(x / scale, -448, 448)), x / scale an IEEE float32 division, RNE.
// Scales are dequantization multipliers: w ≈ e4m3fn_to_f32(code) × scale.
//
// The *_reference functions are the scalar definition. The *_fast functions (SIMD-friendly loops
// for the CPU) and kernels/fp8_quant.cu are tested against them bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace ckpt::ops {

// The block grid over a [rows, cols] weight. Elements are addressed in row-major order.
struct Fp8Grid {
  uint64_t rows = 0, cols = 0;
  uint64_t block_rows = 0, block_cols = 0;  // >= 1 each; clipped to the matrix at the edges

  static Fp8Grid per_tensor(uint64_t rows, uint64_t cols) { return {rows, cols, rows, cols}; }
  static Fp8Grid per_channel(uint64_t rows, uint64_t cols) { return {rows, cols, 1, cols}; }
  static Fp8Grid blocks(uint64_t rows, uint64_t cols, uint64_t br, uint64_t bc) { return {rows, cols, br, bc}; }

  uint64_t grid_rows() const { return (rows + block_rows - 1) / block_rows; }
  uint64_t grid_cols() const { return (cols + block_cols - 1) / block_cols; }
  uint64_t groups() const { return grid_rows() * grid_cols(); }
  uint64_t numel() const { return rows * cols; }
  // The block (row-major index into the scale grid) of element `e`.
  uint64_t group_of(uint64_t e) const { return (e / cols / block_rows) * grid_cols() + (e % cols) / block_cols; }
};

// Source dtypes the quantizer reads.
bool fp8_input_dtype_ok(DType t);
// Scale storage dtypes.
bool fp8_scale_dtype_ok(DType t);

// Element i of a BF16/F16/F32 buffer, widened exactly to float32.
float load_as_f32(const uint8_t* in, DType dtype, uint64_t i);

// The stored scale (as a float32 value) for a block's amax; see the rules above.
float fp8_scale_for_amax(float amax, DType scale_dtype);
// The scale's little-endian bytes in `scale_dtype` (exact: `scale` came from fp8_scale_for_amax).
void store_scale(float scale, DType scale_dtype, uint8_t* out);

// One element: E4M3FN(clamp(x / scale, -448, 448)).
uint8_t fp8_quantize_value(float x, float scale);

// Per-block amax of a whole [rows, cols] tensor (`in` row-major). Returns false when an element
// is NaN or ±Inf (`amax` is then incomplete).
bool fp8_amax_reference(const Fp8Grid& grid, DType dtype, const uint8_t* in, std::vector<float>& amax);
// Codes of a whole tensor given the stored scale of each block.
void fp8_quantize_reference(const Fp8Grid& grid, DType dtype, const uint8_t* in, const std::vector<float>& scales,
                            uint8_t* out);

// ‖w − deq‖² and ‖w‖² (in double) and max |w − deq| over some elements: the per-tensor report.
struct Fp8ErrorStats {
  double sum_sq_err = 0, sum_sq = 0;
  double max_abs_err = 0;
  void merge(const Fp8ErrorStats& o);
  double relative_error() const;  // ‖w − deq‖ / ‖w‖ (0 for an all-zero tensor)
};

// --- the CPU fast path: work on elements [first, first + count) of the tensor, `in` holding just
// those elements (what a streaming producer has in hand) --------------------------------------

// Both run the fastest loops this CPU has (picked once, at run time; see Fp8Path below).
// Raises amax[g] (g indexes the whole grid) for every block the range touches; a NaN or ±Inf
// element makes its block's amax +Inf.
void fp8_amax_fast(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                   float* amax);
// Writes the range's codes; `scales` indexes the whole grid. Adds the range's error to `stats`
// when it is not null.
void fp8_quantize_fast(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                       const float* scales, uint8_t* out, Fp8ErrorStats* stats);

// The CPU loops: portable (compiler-vectorized) and explicit AVX-512 (F, BW, DQ and VBMI, as on
// Zen 4 and Ice Lake or later). Every one this CPU runs is exposed so that tests compare each
// with the reference. Their amax and codes are the same bytes; their error reports differ in the
// last bits (float32 terms summed in another order), each the same for any thread count.
enum class Fp8Path { kPortable, kAvx512 };
const char* fp8_path_name(Fp8Path p);
// The paths this CPU can run, portable first, fastest last.
std::vector<Fp8Path> fp8_paths_on_this_cpu();
void fp8_amax_fast_on(Fp8Path path, const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first,
                      uint64_t count, float* amax);
void fp8_quantize_fast_on(Fp8Path path, const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first,
                          uint64_t count, const float* scales, uint8_t* out, Fp8ErrorStats* stats);

}  // namespace ckpt::ops
