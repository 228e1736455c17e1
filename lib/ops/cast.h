// Casting arrays of floats (F64/F32/F16/BF16 -> F32/F16/BF16), bit-identical with torch's
// `tensor.to()` (the per-element references are in ops/float_convert.h). `cast` picks the
// fastest path this CPU can run, once, at run time (AVX-512, AVX2+F16C, or the portable loop);
// every path is exposed so tests can compare each one with the reference.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "ops/float_convert.h"

namespace ckpt::ops {

// F64, F32, F16, BF16: the dtypes `ckpt cast` converts (everything else is carried unchanged).
bool is_cast_source(DType t);
// F32, F16, BF16: the dtypes it converts to.
bool is_cast_target(DType t);

// The element format of a float dtype (F64/F32/F16/BF16); false for any other dtype.
bool float_format_of(DType t, FloatFormat* f);

enum class CastPath { kPortable, kAvx2, kAvx512 };
const char* cast_path_name(CastPath p);
// The paths this CPU can run, portable first, fastest last.
std::vector<CastPath> cast_paths_on_this_cpu();

// Converts n elements from src (dtype `in`) to dst (dtype `out`); src and dst must not overlap.
// Throws std::logic_error for a pair outside is_cast_source x is_cast_target.
void cast_reference(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n);
void cast_on(CastPath path, DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n);
void cast(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n);

}  // namespace ckpt::ops
