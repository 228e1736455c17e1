// From the library's INT4 types (lib/ops/int4_quant.h, C++20) to the CUDA quantizer's plain
// arguments (kernels/int4_quant.h) and back: what an engine behind `--device cuda` needs around
// Int4QuantKernel, in one place.
#pragma once

#include "int4_quant.h"
#include "ops/int4_quant.h"

namespace ckpt::cuda {

// The kernel arguments for rows [row0, row0 + rows) of a weight of dtype `in`; device pointers as
// in Int4QuantArgs (zeros null where int4_shapes has none, g_idx null to skip it).
Int4QuantArgs int4_kernel_args(const ops::Int4Scheme& scheme, DType in, const ops::Int4Geometry& geo, uint64_t row0,
                               uint64_t rows, const void* device_in, uint32_t* weights, void* scales, uint32_t* zeros,
                               int32_t* g_idx, bool stats);

// The library's issue for what a run reported, with the offending value, recomputed on the host
// from the stripe's source rows (`host_rows`: rows [row0, ...) of the weight, row-major, dtype `in`)
// by the scalar reference — the same Int4Issue the CPU path gives.
ops::Int4Issue int4_issue_of(const Int4QuantResult& result, const ops::Int4Scheme& scheme, DType in,
                             const ops::Int4Geometry& geo, uint64_t row0, const uint8_t* host_rows);

}  // namespace ckpt::cuda
