// The decoder a checkpoint describes, as a runtime (ckpt forward / validate --against) or a
// converter (GGUF) needs it: dimensions, attention layout, rotary embedding, norms, biases, MoE
// routing, tied embeddings — read strictly from config.json and checked against the recipe the
// architecture selects. A setting that changes the computation and is not described here
// (another rope scaling, an activation other than SiLU, multi-head latent attention...) is an
// error naming the key, never ignored: a model this module accepts is one the runtime computes
// exactly as transformers does.
//
// Both spellings transformers has written are read: `rope_theta` + `rope_scaling` (4.x) and
// `rope_parameters` (5.x); `num_experts` and `num_local_experts`. Where config.json omits a key,
// the transformers configuration class's default for that architecture applies (cited below).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/strict_json.h"

namespace ckpt {
class Recipe;
struct Checkpoint;
}  // namespace ckpt

namespace ckpt::model {

// The architectures (config.json architectures[0]) the runtime computes.
enum class Family { kLlama, kMistral, kQwen2, kQwen3, kPhi3, kMixtral, kQwen2Moe, kQwen3Moe };
const char* family_name(Family f);  // "llama", "mistral", ... (transformers' model_type)

// Rotary position embedding (transformers modeling_rope_utils.py: ROPE_INIT_FUNCTIONS).
enum class RopeType { kDefault, kLinear, kLlama3 };
const char* rope_type_name(RopeType t);

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  // The leading dimensions of each head that rotate: int(head_dim * partial_rotary_factor)
  // (Phi-3's partial rotary; head_dim otherwise). Always even. The rotation pairs dimension i
  // with i + rotary_dim/2 (rotate_half, the GPT-NeoX layout every family here uses).
  uint64_t rotary_dim = 0;
  double partial_rotary_factor = 1.0;
  double factor = 1.0;                  // kLinear, kLlama3
  double low_freq_factor = 1.0;         // kLlama3
  double high_freq_factor = 4.0;        // kLlama3
  uint64_t original_max_position = 0;   // kLlama3: rope_scaling.original_max_position_embeddings
};

struct MoeConfig {
  uint64_t experts = 0;       // routed experts per MoE layer
  uint64_t top_k = 0;         // num_experts_per_tok
  uint64_t intermediate = 0;  // each expert's intermediate size
  // Routing is softmax over all router logits, then the top-k probabilities; true when those k
  // are renormalised to sum to 1 (Mixtral always; Qwen MoE when norm_topk_prob).
  bool normalize_top_k = true;
  // Qwen2-MoE's shared expert (0: none): an MLP of this intermediate size every token passes
  // through, scaled by sigmoid(shared_expert_gate(x)).
  uint64_t shared_intermediate = 0;
};

struct ModelConfig {
  std::string architecture;  // config.json architectures[0]: "LlamaForCausalLM"
  Family family = Family::kLlama;
  std::string recipe;        // the recipe's name ("llama")

  uint64_t vocab = 0;         // vocab_size: logits per position (embeddings may hold more rows)
  uint64_t hidden = 0;        // hidden_size
  uint64_t intermediate = 0;  // intermediate_size of the dense MLP (0 when every layer is MoE)
  uint64_t layers = 0;        // num_hidden_layers
  uint64_t heads = 0;         // num_attention_heads
  uint64_t kv_heads = 0;      // num_key_value_heads (GQA: heads is a multiple of it)
  uint64_t head_dim = 0;      // head_dim, or hidden / heads
  uint64_t max_position = 0;  // max_position_embeddings (0 when absent)
  double rms_eps = 1e-6;      // rms_norm_eps: RMSNorm(x) = w * x / sqrt(mean(x^2) + eps)
  RopeConfig rope;
  bool tied_embeddings = false;  // lm_head reuses embed_tokens

  // Which Linears carry a bias. q/k/v together (Qwen2 always; Llama/Qwen3 attention_bias), o
  // (Llama/Qwen3 attention_bias), gate/up/down (Llama mlp_bias).
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool qk_norm = false;        // Qwen3: RMSNorm over head_dim of each q and k head, before rotary
  bool fused_qkv = false;      // Phi-3: qkv_proj rows are q ++ k ++ v
  bool fused_gate_up = false;  // Phi-3: gate_up_proj rows are gate ++ up

  // Per layer: 0 for full causal attention, else the sliding window W (a query at position i
  // sees keys at positions j with i - W < j <= i; transformers masking_utils
  // sliding_window_overlay).
  std::vector<uint64_t> sliding_window;
  std::optional<MoeConfig> moe;
  std::vector<bool> moe_layer;  // per layer: its MLP is the MoE block (else the dense MLP)

  std::optional<int64_t> bos_token;
  std::vector<int64_t> eos_tokens;

  double attention_scale() const;  // head_dim^-0.5
  uint64_t q_rows() const { return heads * head_dim; }
  uint64_t kv_rows() const { return kv_heads * head_dim; }
  // A one-line description for reports: "llama: 2 layers, hidden 64, 8 heads / 2 KV x 8, ...".
  std::string describe() const;
  ojson to_json() const;
};

// Reads config.json (`config`, named `label` in errors) for the architecture `recipe` covers.
// Errors: kUnsupported for an architecture or setting the runtime does not compute (naming the
// key), kInvalidArgument for a malformed or inconsistent value.
ModelConfig read_model_config(const ojson& config, const Recipe& recipe, const std::string& label);

// The checkpoint's model: its config.json with the recipe of its architecture (or the one a
// sharded output records in ckpt_parallel.recipe).
ModelConfig model_config_of(const Checkpoint& ck);

}  // namespace ckpt::model
