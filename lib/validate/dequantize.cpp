#include "validate/dequantize.h"

#include <cstring>
#include <stdexcept>

#include "ops/float_convert.h"
#include "ops/fp8.h"

namespace ckpt::validate {

namespace {

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

double decode_element(DType t, const uint8_t* p) {
  switch (t) {
    case DType::F32: {
      uint32_t u = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                   (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
      return ops::f32_from_bits(u);
    }
    case DType::BF16: return ops::bf16_to_f32(load_u16(p));
    case DType::F16: return ops::f16_to_f32(load_u16(p));
    case DType::F8_E4M3: return ops::e4m3fn_to_f32(p[0]);
    default: throw std::logic_error("decode_element: not a float dtype");
  }
}

std::vector<double> decode_all(DType t, const uint8_t* p, uint64_t numel) {
  std::vector<double> v(numel);
  const unsigned size = dtype_bits(t) / 8;
  for (uint64_t i = 0; i < numel; ++i) v[i] = decode_element(t, p + i * size);
  return v;
}

void dequantize_rows(const LinearWeight& lw, const uint8_t* weight, const std::vector<double>& scales,
                     uint64_t row_begin, uint64_t rows, double* out) {
  const DType t = lw.weight->dtype();
  const unsigned size = dtype_bits(t) / 8;
  const uint64_t k = lw.k;
  const uint64_t k_blocks = lw.layout == quant::Granularity::kBlock ? (k + lw.block_k - 1) / lw.block_k : 0;
  for (uint64_t r = 0; r < rows; ++r) {
    const uint64_t row = row_begin + r;
    const uint8_t* src = weight + row * k * size;
    double* dst = out + r * k;
    for (uint64_t c = 0; c < k; ++c) {
      double v = decode_element(t, src + c * size);
      if (lw.fp8()) {
        switch (lw.layout) {
          case quant::Granularity::kTensor: v *= scales[0]; break;
          case quant::Granularity::kChannel: v *= scales[row]; break;
          case quant::Granularity::kGroup:  // not an FP8 granularity
          case quant::Granularity::kBlock: v *= scales[(row / lw.block_n) * k_blocks + c / lw.block_k]; break;
        }
      }
      dst[c] = v;
    }
  }
}

}  // namespace ckpt::validate
