// Which tensors of a checkpoint are Linear weights (the ones a serving engine runs a GEMM with),
// and, for FP8 ones, which scale tensor goes with each and how it is laid out. Every structural rule
// of vLLM's FP8 loaders (quantization/fp8.py, compressed_tensors/) that would trip is checked: a scale for
// every FP8 weight with the right name, dtype and shape; no scale without its weight; every
// unquantized Linear weight of a quantized checkpoint listed as ignored.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "recipes/recipe.h"
#include "quant/scheme.h"

namespace ckpt::validate {

// "per-tensor", "per-channel", "block": how FP8 scale layouts read in messages.
const char* scale_layout_name(quant::Granularity g);

struct LinearWeight {
  std::string name;                 // "model.layers.0.self_attn.q_proj.weight" (INT4 too: the logical weight)
  const TensorRef* weight = nullptr;  // INT4: the codes (qweight / weight_packed)
  const TensorRef* scale = nullptr;  // FP8: the dequantization multiplier tensor; INT4: the group scales
  quant::Granularity layout = quant::Granularity::kTensor;
  uint64_t n = 0, k = 0;             // weight shape [N, K]: out features, in features
  uint64_t block_n = 0, block_k = 0;  // kBlock
  // INT4 (quant/scheme.h owns its tensors): the scheme the arrays decode with (ops::int4_decode),
  // the zero points and g_idx where the format stores them (g_idx decodes only with act-order:
  // without it vLLM reads k / G), and every tensor the Linear owns.
  std::optional<ops::Int4Scheme> int4;
  bool act_order = false;
  const TensorRef* zeros = nullptr;
  const TensorRef* g_idx = nullptr;
  std::vector<const TensorRef*> owned;  // INT4: all its tensors (codes, scales, zeros, g_idx, shape)
  // A `ckpt marlin` output (commands/marlin.h): `int4` is the source format's scheme, and the
  // tensors are vLLM's Marlin layer's: weight the Marlin qweight I32 [K/16, 2N], scale [G, N]
  // Marlin-permuted, zeros Marlin zero points I32 [G, N/8] (asymmetric only), g_idx the sorted
  // g_idx and sort_indices its sort indices (act-order only).
  bool marlin = false;
  const TensorRef* sort_indices = nullptr;
  bool fp8() const { return scale != nullptr && !int4; }
  bool is_int4() const { return int4.has_value(); }
  // "bf16", "fp8 per-tensor", "fp8 block 128x128", "int4 gptq", "int4 gptq marlin", ...
  std::string format() const;
};

using FailFn = std::function<void(const std::string& check, const std::string& file, const std::string& tensor,
                                  const std::string& message)>;

// A Marlin Linear's arrays back in its source format (commands/marlin.h undoes them), what that
// format's decoders read (ops::Int4Stored: ops::int4_decode, ops::int4_check_stored). `bytes`
// gives a tensor's bytes (any alignment); the codes are undone only with `with_codes` (the
// structure checks leave them unread). Zeros are empty when symmetric, g_idx without act-order.
// Fails (naming the tensor) when the sort indices are not a permutation.
struct Int4SourceArrays {
  std::vector<uint32_t> weights, zeros;
  std::vector<uint8_t> scales;
  std::vector<int32_t> g_idx;
};
Int4SourceArrays marlin_source_arrays(const LinearWeight& lw, const std::function<const uint8_t*(const TensorRef&)>& bytes,
                                      bool with_codes);

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
// (check "scale", "int4" or "quant-config") and the offending weight is left out. INT4 Linears
// are the modules owning the scheme's tensors: their [N, K] comes from the codes tensor's shape
// (compressed-tensors: from weight_shape), and every tensor of quant::Scheme::linear_parts must be
// there with its dtype and shape, and no other tensor the scheme's Linears could own.
// `marlin`: the checkpoint is a `ckpt marlin` output of `scheme` (its source format): the INT4
// Linears are found by their Marlin tensors (names kept from the source format), each with the
// dtype and shape the Marlin layout gives it, the shapes the Marlin kernel takes, and no tensor
// the layout drops (symmetric GPTQ qzeros, a trivial g_idx).
std::vector<LinearWeight> find_linear_weights(const Checkpoint& ck, const quant::Scheme& scheme,
                                              const LinearSelector& is_linear, const FailFn& fail, bool marlin = false);

}  // namespace ckpt::validate
