#include "ops/cast_op.h"

#include <stdexcept>

#include "ops/cast.h"

namespace ckpt::ops {

CastOp::CastOp(DType in, DType out) : in_(in), out_(out) {
  if (!is_cast_source(in) || !is_cast_target(out)) throw std::logic_error("CastOp: unsupported pair " + cast_op_name(in, out));
}

void CastOp::apply(const uint8_t* in, uint8_t* out, uint64_t n) const { cast(in_, out_, in, out, n); }

std::string CastOp::name() const { return cast_op_name(in_, out_); }

std::string cast_op_name(DType in, DType out) {
  return "cast " + std::string(dtype_name(in)) + "->" + std::string(dtype_name(out));
}

}  // namespace ckpt::ops
