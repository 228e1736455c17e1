// Internal to lib/ops/fp8_quant*.cpp: walking a range of elements block by block, the amax of a
// run from its largest magnitude bits, and the AVX-512 loops (fp8_quant_avx512.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/dtype.h"
#include "ops/float_convert.h"
#include "ops/fp8_quant.h"

namespace ckpt::ops::detail {

// The runs of elements [first, first + count) that each lie inside one block, in order: pieces
// of one row, or whole rows when a block spans all columns. Divides once per row at most, so
// that 128-element runs of the block scheme cost little.
class Fp8Runs {
 public:
  Fp8Runs(const Fp8Grid& g, uint64_t first, uint64_t count)
      : g_(g), first_(first), e_(first), end_(first + count), wide_(g.block_cols >= g.cols) {
    if (!wide_) start_row(first / g.cols, first % g.cols);
  }

  // The next run: its offset in the range, length and block (row-major index into the grid).
  bool next(uint64_t& offset, uint64_t& length, uint64_t& group) {
    if (e_ >= end_) return false;
    uint64_t stop;
    if (wide_) {
      group = e_ / g_.cols / g_.block_rows;
      stop = std::min(end_, std::min(g_.rows, (group + 1) * g_.block_rows) * g_.cols);
    } else {
      const uint64_t stop_col = std::min(g_.cols, (block_col_ + 1) * g_.block_cols);
      const uint64_t block_end = e_ - col_ + stop_col;
      group = row_group_ + block_col_;
      stop = std::min(end_, block_end);
      if (stop == block_end) {
        if (stop_col == g_.cols) {
          start_row(row_ + 1, 0);
        } else {
          col_ = stop_col;
          ++block_col_;
        }
      }
    }
    offset = e_ - first_;
    length = stop - e_;
    e_ = stop;
    return true;
  }

 private:
  void start_row(uint64_t row, uint64_t col) {
    row_ = row;
    col_ = col;
    block_col_ = col / g_.block_cols;
    row_group_ = row / g_.block_rows * g_.grid_cols();
  }

  const Fp8Grid& g_;
  uint64_t first_, e_, end_;
  bool wide_;
  uint64_t row_ = 0, col_ = 0, block_col_ = 0, row_group_ = 0;  // where e_ is (narrow blocks only)
};

// max |x| of some BF16/F16/F32 elements from the largest of their bit patterns with the sign
// cleared (for non-negative IEEE values integer order is numeric order, and every NaN/Inf sorts
// above every finite value): +Inf when that is a NaN or an infinity.
inline float amax_of_magnitude_bits(DType dt, uint32_t m) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  if (dt == DType::F32) return m >= 0x7F800000u ? inf : f32_from_bits(m);
  const uint16_t h = static_cast<uint16_t>(m);
  if (dt == DType::BF16) return h >= 0x7F80u ? inf : bf16_to_f32(h);
  return h >= 0x7C00u ? inf : f16_to_f32(h);
}

// Whether this CPU has what the AVX-512 loops need: AVX-512 F, BW, DQ and VBMI.
bool fp8_avx512_on_this_cpu();
// fp8_amax_fast and fp8_quantize_fast on AVX-512; call only where fp8_avx512_on_this_cpu().
void fp8_amax_avx512(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                     float* amax);
void fp8_quantize_avx512(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                         const float* scales, uint8_t* out, Fp8ErrorStats* stats);

}  // namespace ckpt::ops::detail
