// Recipes: declarative per-architecture JSON (recipes/*.json) mapping tensor-name patterns to a
// role — how a tensor splits under tensor parallelism and whether it is a Linear weight that
// quantization may touch. A new architecture is a new JSON file, not new code.
//
// File format:
//   {
//     "name": "llama", "description": "...",
//     "architectures": ["LlamaForCausalLM", "MistralForCausalLM"],
//     "rules": [
//       {"match": "model.embed_tokens.weight", "role": "vocab"},
//       {"match": "model.layers.*.self_attn.q_proj.weight", "role": "q_heads", "linear": true,
//        "group": "qkv"},
//       ...
//     ]
//   }
// `match` is a glob over the whole tensor name where `*` matches any run of characters
// (dots included); the first matching rule wins. Instead of `match`, a rule may give
// `"module": "model.layers.*.self_attn.q_proj"`: it stands for two rules, `<module>.weight`
// with the rule's flags, then `<module>.*` (bias, FP8 weight_scale / weight_scale_inv /
// input_scale, GPTQ qweight / qzeros / scales / g_idx) with the same role and expert/group but
// linear = quantize = false, so quantized checkpoints shard and nothing but the weight is
// ever quantized. Optional keys: "linear" (default false): a
// Linear layer's weight; "quantize" (default = linear): quantization may replace it;
// "expert" (default false): a MoE expert tensor (distributed whole under --ep); "group": tensors
// of one fused engine module (q/k/v, gate/up) that must be treated alike.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/name_pattern.h"
#include "formats/strict_json.h"

namespace ckpt {

struct Checkpoint;

enum class TensorRole {
  kReplicated,   // every rank holds the whole tensor
  kColumn,       // split dim 0 evenly (column-parallel weight, its bias, per-channel scales)
  kRow,          // split dim 1 evenly (row-parallel weight); a 1-D row bias stays whole
  kVocab,        // split dim 0 after padding the vocab (embeddings, lm_head)
  kQHeads,       // q_proj rows, split by whole query heads
  kKvHeads,      // k/v_proj rows, split by whole KV heads (replicated when tp > kv heads)
  kFusedQkv,     // q ++ k ++ v on disk (Phi-3 qkv_proj): cut into pieces, split each by heads
  kFusedGateUp,  // gate ++ up on disk (Phi-3 gate_up_proj): cut in two, split each as column
};

const char* tensor_role_name(TensorRole r);
std::optional<TensorRole> tensor_role_from_name(const std::string& name);

struct RecipeRule {
  std::string match;
  TensorRole role = TensorRole::kReplicated;
  bool linear = false;
  bool quantize = false;
  bool expert = false;
  std::string group;
};

class Recipe {
 public:
  // Parses and checks a recipe document; `label` names it in errors.
  static Recipe parse(const ojson& doc, const std::string& label);
  static Recipe load_file(const std::string& path);
  // The recipe whose "architectures" lists the checkpoint's config.json architectures[0], from
  // the recipes directory; an error names the architecture and the recipes available.
  static Recipe for_checkpoint(const Checkpoint& ck, const std::string& recipes_dir = default_recipes_dir());
  // The recipe called `name` (a recipe's "name", as recorded in sharded outputs).
  static Recipe named(const std::string& name, const std::string& recipes_dir = default_recipes_dir());
  // Every recipe of a directory, in file name order.
  static std::vector<Recipe> load_dir(const std::string& recipes_dir);
  // Where recipes live: $CKPT_RECIPES_DIR, else recipes/ next to the binary's ../, else the
  // source tree's recipes/ (compiled in).
  static std::string default_recipes_dir();

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& architectures() const { return architectures_; }
  const std::vector<RecipeRule>& rules() const { return rules_; }
  // The first rule matching `tensor_name`, or nullptr.
  const RecipeRule* match(const std::string& tensor_name) const;
  // The checkpoint's tensors that no rule matches (in checkpoint order).
  std::vector<std::string> unmatched(const Checkpoint& ck) const;
  // Fails (naming the recipe and listing the unmatched tensors) unless every tensor matches.
  void check_covers(const Checkpoint& ck) const;

 private:
  std::string name_, path_;
  std::vector<std::string> architectures_;
  std::vector<RecipeRule> rules_;
};

}  // namespace ckpt
