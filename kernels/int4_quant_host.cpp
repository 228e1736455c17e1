#include "int4_quant_host.h"

#include <vector>

#include "ops/int4_math.h"

namespace ckpt::cuda {

Int4QuantArgs int4_kernel_args(const ops::Int4Scheme& s, DType in, const ops::Int4Geometry& geo, uint64_t row0,
                               uint64_t rows, const void* device_in, uint32_t* weights, void* scales, uint32_t* zeros,
                               int32_t* g_idx, bool stats) {
  Int4QuantArgs a;
  a.format = s.format == ops::Int4Format::kGptq ? ops::kInt4Gptq
             : s.format == ops::Int4Format::kAwq ? ops::kInt4Awq
                                                 : ops::kInt4Ct;
  a.in_type = in == DType::BF16 ? 0 : in == DType::F16 ? 1 : 2;
  a.scale_type = s.scale_dtype == DType::F16 ? ops::kInt4ScaleF16
                 : s.scale_dtype == DType::BF16 ? ops::kInt4ScaleBF16
                                                : ops::kInt4ScaleF32;
  a.symmetric = s.symmetric;
  a.zero_offset = s.gptq_zero_offset;
  a.n = geo.n;
  a.k = geo.k;
  a.group = geo.group;
  a.row0 = row0;
  a.rows = rows;
  a.in = device_in;
  a.weights = weights;
  a.scales = scales;
  a.zeros = zeros;
  a.g_idx = g_idx;
  a.stats = stats;
  return a;
}

ops::Int4Issue int4_issue_of(const Int4QuantResult& r, const ops::Int4Scheme& s, DType in, const ops::Int4Geometry& geo,
                             uint64_t row0, const uint8_t* host_rows) {
  if (r.issue == 0) return {};
  // The reference on the one group that holds the problem: it reports the same kind and place,
  // with the value.
  const uint64_t col0 = r.col / geo.group * geo.group, es = dtype_bits(in) / 8;
  const ops::Int4Source src{host_rows + ((r.row - row0) * geo.k + col0) * es, in, geo.k, r.row, 1, col0, geo.group};
  std::vector<ops::Int4Params> p(1);
  return ops::int4_params_reference(s, geo, src, p.data());
}

}  // namespace ckpt::cuda
