// Weights as numbers: decoding stored elements (f32, f16, bf16, FP8 E4M3) and dequantizing FP8
// weights with their scales (w = q * s, per tensor, per output channel, or per block), the
// reference every GEMM check compares with. The GPU's dequantize kernels are tested against it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "validate/linear_weights.h"

namespace ckpt::validate {

// The value of one stored element of a float dtype (F32, F16, BF16, F8_E4M3).
double decode_element(DType t, const uint8_t* p);

// Decodes a whole scale tensor (any float dtype) to doubles.
std::vector<double> decode_all(DType t, const uint8_t* p, uint64_t numel);

// Rows [row_begin, row_begin + rows) of the dequantized weight, row-major [rows, K]. `weight`
// points at the weight's first byte; `scales` holds the decoded scale tensor (empty for dense).
void dequantize_rows(const LinearWeight& lw, const uint8_t* weight, const std::vector<double>& scales,
                     uint64_t row_begin, uint64_t rows, double* out);

}  // namespace ckpt::validate
