// How one tensor is laid out across tensor-parallel ranks: from its recipe role, its name's last
// component (weight, bias, FP8 scales, GPTQ parts) and its shape, to "whole on every rank",
// "split along dim d in units of u (by heads, fused pieces)", "vocab rows with zero padding" or
// "a whole expert on its owner rank" (--ep). Both `shard` and `merge` use it, so the two are
// exact inverses by construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "commands/tp_split.h"
#include "formats/strict_json.h"
#include "quant/scheme.h"
#include "recipes/recipe.h"

namespace ckpt {

// What the layout needs from config.json.
struct ModelDims {
  uint64_t heads = 0, kv_heads = 0, layers = 0;
  quant::Scheme quant;  // quantization_config: which tensors a quantized Linear owns and their units

  static ModelDims from_config(const ojson& config, const std::string& file);
};

struct TensorLayout {
  enum class Kind { kWhole, kAxis, kVocab, kExpert };
  Kind kind = Kind::kWhole;
  size_t dim = 0;                 // kAxis, kVocab: the split dimension
  std::vector<AxisPiece> pieces;  // kAxis: the logical pieces of the axis
  uint64_t unit = 1;              // kAxis: logical axis elements per tensor element (pack/block)
  uint64_t expert = 0;            // kExpert: the expert id (its owner follows from ep_experts)
  std::string describe() const;
};

// The layout of tensor `name` of `shape` under `rule`; fails (kUnsupported, naming the tensor)
// for a tensor the role cannot split (an unknown quantized part, a non-2-D row weight...).
// `ep` distributes whole experts; tp == 1 keeps every non-vocab tensor whole.
TensorLayout tensor_layout(const std::string& name, const std::vector<uint64_t>& shape, const RecipeRule& rule,
                           const ModelDims& dims, uint64_t tp, bool ep);

// What rank `rank` of `tp` holds of a tensor: nothing, or ranges along layout.dim (in tensor
// elements, concatenated in order) followed by `pad` zero rows (vocab).
struct RankSlice {
  bool held = false;
  std::vector<AxisRange> ranges;
  uint64_t pad = 0;
  std::string refusal;  // non-empty: this degree cannot split the tensor
};
RankSlice rank_slice(const TensorLayout& layout, const std::vector<uint64_t>& shape, uint64_t tp, uint64_t rank,
                     uint64_t vocab_multiple, uint64_t experts);

// The shape of rank `rank`'s slice.
std::vector<uint64_t> slice_shape(const TensorLayout& layout, const std::vector<uint64_t>& shape,
                                  const RankSlice& slice);

// The expert id in a name ("...experts.7.w1.weight" -> 7) and the name's part before it, or
// false when the name has no "experts.<n>." component.
bool parse_expert(const std::string& name, std::string* prefix, uint64_t* id);

// The layer index of "model.layers.<i>.…" names, or -1.
int64_t layer_index(const std::string& name);

}  // namespace ckpt
