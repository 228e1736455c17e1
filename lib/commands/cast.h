// `ckpt cast`: converts the floating-point tensors (F64, F32, F16, BF16) of any checkpoint the
// library opens to one dtype (BF16, F16 or F32), bit-identical with torch's `tensor.to()`.
// Integer, bool, FP8 and sub-byte tensors are carried unchanged; `keep` patterns leave matching
// tensors as they are, `only` patterns restrict the cast to matching tensors. In a quantized
// checkpoint (quant/scheme.h) the scales, packed ints, zero points and g_idx of quantized Linears
// are never cast. config.json gets
// the new dtype; every other side file is carried over unchanged.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "plan/plan.h"

namespace ckpt {

// Makes the ElementOp that converts one tensor (the CPU CastOp, or the CUDA twin).
using CastOpFactory = std::function<std::shared_ptr<const ElementOp>(DType in, DType out)>;

struct CastOptions {
  DType dtype = DType::BF16;
  std::vector<std::string> keep;  // globs ('*' matches any run, dots included)
  std::vector<std::string> only;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  CastOpFactory make_op;          // empty: the CPU op
};

// Fails with kInvalidArgument when the target is not BF16/F16/F32 or a pattern matches no tensor.
Plan plan_cast(const Checkpoint& ck, const CastOptions& options);

// config.json text with the dtype keys set to `torch_name` ("float16"): `torch_dtype` always, and
// `dtype` where the file has it (transformers >= 4.56 writes `dtype`), at the top level and in
// sub-configs (text_config, ...) that carry their own. Key order is kept; a new key goes in
// sorted position when the file's keys are sorted (as transformers writes them).
std::string config_with_dtype(const ojson& config, const std::string& torch_name);

}  // namespace ckpt
