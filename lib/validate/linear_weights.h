// Which tensors of a checkpoint are Linear weights (the ones a serving engine runs a GEMM with),
// and, for FP8 ones, which scale tensor goes with each and how it is laid out. Every structural rule
// of vLLM's FP8 loaders (quantization/fp8.py, compressed_tensors/) that would trip is checked: a scale for
// every FP8 weight with the right name, dtype and shape; no scale without its weight; every
// unquantized Linear weight of a quantized checkpoint listed as ignored.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "recipes/recipe.h"
#include "quant/scheme.h"

namespace ckpt::validate {

// "per-tensor", "per-channel", "block": how FP8 scale layouts read in messages.
const char* scale_layout_name(quant::Granularity g);

struct LinearWeight {
  std::string name;                 // "model.layers.0.self_attn.q_proj.weight"
  const TensorRef* weight = nullptr;
  const TensorRef* scale = nullptr;  // FP8: the dequantization multiplier tensor
  quant::Granularity layout = quant::Granularity::kTensor;
  uint64_t n = 0, k = 0;             // weight shape [N, K]: out features, in features
  uint64_t block_n = 0, block_k = 0;  // kBlock
  bool fp8() const { return scale != nullptr; }
  // "bf16", "fp8 per-tensor", "fp8 block 128x128", ...
  std::string format() const;
};

using FailFn = std::function<void(const std::string& check, const std::string& file, const std::string& tensor,
                                  const std::string& message)>;

// Which tensors are Linear weights (the ones an engine multiplies activations with): the rules
// marked "linear" in the checkpoint's recipe (chosen by architecture, or by the name a shard
// output records in ckpt_parallel.recipe); for an architecture no recipe knows, every 2-D
// floating-point *.weight that is not an embedding or a norm.
class LinearSelector {
 public:
  static LinearSelector for_checkpoint(const Checkpoint& ck, const std::optional<ojson>& parallel);
  bool operator()(const TensorRef& t) const;
  // "recipe llama" or "name rule (no recipe for architecture X)".
  const std::string& source() const { return source_; }

 private:
  std::optional<Recipe> recipe_;
  std::string source_;
};

// The Linear weights of `ck` in tensor order. Structural problems are reported through `fail`
// (check "scale" or "quant-config") and the offending weight is left out.
std::vector<LinearWeight> find_linear_weights(const Checkpoint& ck, const quant::Scheme& scheme,
                                              const LinearSelector& is_linear, const FailFn& fail);

}  // namespace ckpt::validate
