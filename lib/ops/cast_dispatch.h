// Internal to lib/ops/cast*.cpp: from a runtime (dtype, dtype) pair to a compile-time
// (FloatFormat, FloatFormat) pair, and the scalar reference loop every path finishes tails with.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

#include "core/dtype.h"
#include "ops/cast.h"
#include "ops/float_convert.h"

namespace ckpt::ops::detail {

// Calls fn.template operator()<I, O>() for the pair (in, out).
template <class Fn>
void visit_cast_pair(DType in, DType out, Fn&& fn) {
  FloatFormat i, o;
  if (!float_format_of(in, &i) || !float_format_of(out, &o) || o == FloatFormat::kF64)
    throw std::logic_error("cast: no conversion " + std::string(dtype_name(in)) + " -> " + std::string(dtype_name(out)));
  auto with_out = [&]<FloatFormat I>() {
    switch (o) {
      case FloatFormat::kF32: fn.template operator()<I, FloatFormat::kF32>(); break;
      case FloatFormat::kF16: fn.template operator()<I, FloatFormat::kF16>(); break;
      default: fn.template operator()<I, FloatFormat::kBF16>(); break;
    }
  };
  switch (i) {
    case FloatFormat::kF64: with_out.template operator()<FloatFormat::kF64>(); break;
    case FloatFormat::kF32: with_out.template operator()<FloatFormat::kF32>(); break;
    case FloatFormat::kF16: with_out.template operator()<FloatFormat::kF16>(); break;
    case FloatFormat::kBF16: with_out.template operator()<FloatFormat::kBF16>(); break;
  }
}

// The reference loop on unaligned bytes.
template <FloatFormat I, FloatFormat O>
void reference_loop(const uint8_t* src, uint8_t* dst, uint64_t n) {
  using In = float_bits_t<I>;
  using Out = float_bits_t<O>;
  for (uint64_t k = 0; k < n; ++k) {
    In x;
    std::memcpy(&x, src + k * sizeof(In), sizeof(In));
    const Out y = convert_bits<I, O>(x);
    std::memcpy(dst + k * sizeof(Out), &y, sizeof(Out));
  }
}

// The SIMD paths (cast_avx2.cpp, cast_avx512.cpp); call only where the CPU has them.
void cast_avx2(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n);
void cast_avx512(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n);

}  // namespace ckpt::ops::detail
