#include "model/model_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/sizes.h"
#include "recipes/recipe.h"

namespace ckpt::model {

namespace {

// Per architecture: the family, the recipe that must cover it, and the transformers
// configuration class defaults for the keys a config.json may omit (configuration_<family>.py:
// rms_norm_eps, rope_theta; head_dim where the class has its own default).
struct FamilyInfo {
  const char* architecture;
  Family family;
  const char* recipe;
  double rms_eps;
  double rope_theta;
  uint64_t default_head_dim;  // 0: hidden_size / num_attention_heads
};

constexpr FamilyInfo kFamilies[] = {
    {"LlamaForCausalLM", Family::kLlama, "llama", 1e-6, 10000.0, 0},
    {"MistralForCausalLM", Family::kMistral, "llama", 1e-6, 10000.0, 0},
    {"Qwen2ForCausalLM", Family::kQwen2, "qwen2", 1e-6, 10000.0, 0},
    {"Qwen3ForCausalLM", Family::kQwen3, "qwen3", 1e-6, 10000.0, 128},
    {"Phi3ForCausalLM", Family::kPhi3, "phi3", 1e-5, 10000.0, 0},
    {"MixtralForCausalLM", Family::kMixtral, "mixtral", 1e-5, 1e6, 0},
    {"Qwen2MoeForCausalLM", Family::kQwen2Moe, "qwen_moe", 1e-6, 10000.0, 0},
    {"Qwen3MoeForCausalLM", Family::kQwen3Moe, "qwen_moe", 1e-6, 10000.0, 128},
};

// Architectures with a recipe (ckpt can shard and quantize them) that the runtime refuses,
// with the reason.
struct Refused {
  const char* architecture;
  const char* why;
};
constexpr Refused kRefused[] = {
    {"DeepseekV2ForCausalLM", "multi-head latent attention and grouped sigmoid routing are not implemented"},
    {"DeepseekV3ForCausalLM", "multi-head latent attention and grouped sigmoid routing are not implemented"},
};

// Bounds on dimensions: far above any released model, low enough that products of them cannot
// overflow and a corrupt config cannot ask for absurd allocations.
constexpr uint64_t kMaxDim = 1ull << 20;
constexpr uint64_t kMaxVocab = 1ull << 31;
constexpr uint64_t kMaxLayers = 4096;

class Reader {
 public:
  Reader(const ojson& c, std::string label) : c_(c), label_(std::move(label)) {}

  [[noreturn]] void bad(const std::string& key, const std::string& rule) const {
    fail(Errc::kInvalidArgument, label_, "", key + ": " + rule);
  }
  [[noreturn]] void unsupported(const std::string& key, const std::string& rule) const {
    fail(Errc::kUnsupported, label_, "", key + ": " + rule + " (the ckpt runtime cannot compute this model)");
  }

  const ojson* find(const ojson& obj, const std::string& key) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  const ojson* find(const std::string& key) const { return find(c_, key); }

  uint64_t uint_in(const ojson& obj, const std::string& key, const std::string& where, uint64_t lo, uint64_t hi,
                   std::optional<uint64_t> fallback) const {
    const ojson* v = find(obj, key);
    if (!v) {
      if (fallback) return *fallback;
      bad(where + key, "is required (a positive integer)");
    }
    if (!v->is_number_integer() || v->get<int64_t>() < 0) bad(where + key, "must be a non-negative integer, not " + json_excerpt(*v));
    uint64_t x = v->get<uint64_t>();
    if (x < lo || x > hi)
      bad(where + key, "is " + std::to_string(x) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
  }
  uint64_t uint(const std::string& key, uint64_t lo, uint64_t hi, std::optional<uint64_t> fallback = std::nullopt) const {
    return uint_in(c_, key, "", lo, hi, fallback);
  }

  double number_in(const ojson& obj, const std::string& key, const std::string& where, std::optional<double> fallback) const {
    const ojson* v = find(obj, key);
    if (!v) {
      if (fallback) return *fallback;
      bad(where + key, "is required (a number)");
    }
    if (!v->is_number()) bad(where + key, "must be a number, not " + json_excerpt(*v));
    double x = v->get<double>();
    if (!std::isfinite(x)) bad(where + key, "must be finite");
    return x;
  }
  double number(const std::string& key, std::optional<double> fallback) const { return number_in(c_, key, "", fallback); }

  bool boolean(const std::string& key, bool fallback) const {
    const ojson* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) bad(key, "must be true or false, not " + json_excerpt(*v));
    return v->get<bool>();
  }

  std::string string_in(const ojson& obj, const std::string& key, const std::string& where, const std::string& fallback) const {
    const ojson* v = find(obj, key);
    if (!v) return fallback;
    if (!v->is_string()) bad(where + key, "must be a string, not " + json_excerpt(*v));
    return v->get<std::string>();
  }

  const std::string& label() const { return label_; }

 private:
  const ojson& c_;
  std::string label_;
};

// rope_theta / rope_scaling (transformers 4.x) or rope_parameters (5.x), into `rope`.
void read_rope(const Reader& r, const FamilyInfo& fam, uint64_t head_dim, RopeConfig& rope) {
  const ojson* params = r.find("rope_parameters");
  const ojson* scaling = r.find("rope_scaling");
  if (params && scaling) r.bad("rope_parameters", "and rope_scaling are both present; a config has one or the other");
  const ojson* block = params ? params : scaling;
  const std::string where = params ? "rope_parameters." : "rope_scaling.";
  if (block && !block->is_object()) r.bad(where.substr(0, where.size() - 1), "must be an object");
  if (block) {
    for (const auto& [key, value] : block->items())
      if (value.is_object())
        r.unsupported(where + key, "per-layer-type rope parameters are not supported");
  }

  // theta: top level (4.x), or inside rope_parameters (5.x); both must agree when both appear.
  const double top_theta = r.number("rope_theta", fam.rope_theta);
  rope.theta = top_theta;
  if (params && r.find(*params, "rope_theta")) {
    rope.theta = r.number_in(*params, "rope_theta", where, std::nullopt);
    if (r.find("rope_theta") && top_theta != rope.theta)
      r.bad("rope_theta", "differs from rope_parameters.rope_theta");
  }
  if (!(rope.theta > 1)) r.bad("rope_theta", "must be > 1");

  // partial_rotary_factor: top level (4.x Phi-3) or in rope_parameters (5.x).
  double prf = r.number("partial_rotary_factor", 1.0);
  if (params && r.find(*params, "partial_rotary_factor")) {
    const double inner = r.number_in(*params, "partial_rotary_factor", where, std::nullopt);
    if (r.find("partial_rotary_factor") && inner != prf)
      r.bad("partial_rotary_factor", "differs from rope_parameters.partial_rotary_factor");
    prf = inner;
  }
  if (!(prf > 0 && prf <= 1)) r.bad("partial_rotary_factor", "must be in (0, 1]");
  if (prf != 1.0 && fam.family != Family::kPhi3)
    r.unsupported("partial_rotary_factor", "partial rotary is implemented for Phi-3 only");
  rope.partial_rotary_factor = prf;
  // transformers: dim = int(head_dim * partial_rotary_factor) (modeling_rope_utils.py,
  // _compute_default_rope_parameters).
  rope.rotary_dim = static_cast<uint64_t>(static_cast<double>(head_dim) * prf);
  if (rope.rotary_dim == 0 || rope.rotary_dim % 2 != 0 || rope.rotary_dim > head_dim)
    r.bad("partial_rotary_factor", "gives " + std::to_string(rope.rotary_dim) + " rotary dimensions of head_dim " +
                                       std::to_string(head_dim) + " (must be even and positive)");

  std::string type = "default";
  if (block) {
    const std::string a = r.string_in(*block, "rope_type", where, "");
    const std::string b = r.string_in(*block, "type", where, "");  // transformers: "rope_type" was originally "type"
    if (!a.empty() && !b.empty() && a != b) r.bad(where + "rope_type", "and " + where + "type disagree");
    type = !a.empty() ? a : !b.empty() ? b : (params ? "default" : "");
    if (type.empty()) r.bad(where + "rope_type", "is missing");
  }
  if (type == "default") {
    rope.type = RopeType::kDefault;
  } else if (type == "linear") {
    rope.type = RopeType::kLinear;
    rope.factor = r.number_in(*block, "factor", where, std::nullopt);
    if (!(rope.factor >= 1)) r.bad(where + "factor", "must be >= 1");
  } else if (type == "llama3") {
    rope.type = RopeType::kLlama3;
    rope.factor = r.number_in(*block, "factor", where, std::nullopt);
    rope.low_freq_factor = r.number_in(*block, "low_freq_factor", where, std::nullopt);
    rope.high_freq_factor = r.number_in(*block, "high_freq_factor", where, std::nullopt);
    rope.original_max_position = r.uint_in(*block, "original_max_position_embeddings", where, 1, 1ull << 40, std::nullopt);
    if (!(rope.factor >= 1)) r.bad(where + "factor", "must be >= 1");
    if (!(rope.low_freq_factor > 0) || !(rope.high_freq_factor > rope.low_freq_factor))
      r.bad(where + "high_freq_factor", "must be greater than low_freq_factor > 0");
  } else {
    r.unsupported(where + "rope_type", "'" + type + "' scaling is not implemented (default, linear and llama3 are)");
  }
}

// Per-layer sliding windows.
std::vector<uint64_t> read_sliding_windows(const Reader& r, const FamilyInfo& fam, uint64_t layers) {
  std::vector<uint64_t> out(layers, 0);
  const ojson* sw = r.find("sliding_window");
  uint64_t window = 0;
  if (sw) {
    if (!sw->is_number_integer() || sw->get<int64_t>() <= 0) r.bad("sliding_window", "must be null or a positive integer");
    window = sw->get<uint64_t>();
  }
  const bool qwen = fam.family == Family::kQwen2 || fam.family == Family::kQwen3;
  const bool qwen_moe = fam.family == Family::kQwen2Moe || fam.family == Family::kQwen3Moe;
  if (qwen || qwen_moe) {
    // Qwen configs carry sliding_window even when it is off: use_sliding_window decides
    // (configuration_qwen2.py: sliding_window = sliding_window if use_sliding_window else None).
    const bool use = r.boolean("use_sliding_window", false);
    if (use && qwen_moe)
      r.unsupported("use_sliding_window", "sliding-window attention in Qwen MoE models is not implemented");
    if (use && window == 0) r.bad("use_sliding_window", "is true but sliding_window is null");
    if (!use) window = 0;
  } else if (fam.family == Family::kLlama) {
    window = 0;  // LlamaConfig has no sliding window
  }
  if (const ojson* lt = r.find("layer_types")) {
    if (!lt->is_array() || lt->size() != layers)
      r.bad("layer_types", "must list one type per layer (" + std::to_string(layers) + ")");
    for (uint64_t i = 0; i < layers; ++i) {
      const ojson& t = (*lt)[i];
      if (t == "full_attention") continue;
      if (t != "sliding_attention")
        r.unsupported("layer_types[" + std::to_string(i) + "]", json_excerpt(t) + " is not full_attention or sliding_attention");
      if (window == 0) r.bad("layer_types[" + std::to_string(i) + "]", "is sliding_attention but no sliding window is in effect");
      out[i] = window;
    }
    return out;
  }
  if (window == 0) return out;
  // Qwen2/Qwen3 slide from layer max_window_layers on; the others on every layer.
  const uint64_t first = qwen ? r.uint("max_window_layers", 0, kMaxLayers, 28) : 0;
  for (uint64_t i = first; i < layers; ++i) out[i] = window;
  return out;
}

std::optional<int64_t> token_id(const Reader& r, const ojson& v, const std::string& key) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_number_integer() || v.get<int64_t>() < 0) r.bad(key, "must be a non-negative integer or null");
  return v.get<int64_t>();
}

void read_moe(const Reader& r, const FamilyInfo& fam, ModelConfig& m) {
  const bool mixtral = fam.family == Family::kMixtral;
  const bool qwen2 = fam.family == Family::kQwen2Moe;
  if (!mixtral && fam.family != Family::kQwen3Moe && !qwen2) return;
  MoeConfig moe;
  // transformers 5 writes num_local_experts where 4.x Qwen MoE configs wrote num_experts.
  const ojson* a = r.find("num_experts");
  const ojson* b = r.find("num_local_experts");
  if (a && b && *a != *b) r.bad("num_experts", "and num_local_experts disagree");
  moe.experts = r.uint(a ? "num_experts" : "num_local_experts", 1, 1u << 16);
  moe.top_k = r.uint("num_experts_per_tok", 1, moe.experts);
  if (mixtral) {
    // MixtralSparseMoeBlock: softmax, top-k, always renormalised; experts are intermediate_size.
    moe.intermediate = r.uint("intermediate_size", 1, kMaxDim);
    moe.normalize_top_k = true;
    m.intermediate = 0;
    m.moe_layer.assign(m.layers, true);
  } else {
    // Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock: renormalised only with norm_topk_prob
    // (default false in both configuration classes).
    moe.intermediate = r.uint("moe_intermediate_size", 1, kMaxDim);
    moe.normalize_top_k = r.boolean("norm_topk_prob", false);
    if (qwen2) moe.shared_intermediate = r.uint("shared_expert_intermediate_size", 0, kMaxDim);
    const uint64_t step = r.uint("decoder_sparse_step", 1, kMaxLayers, 1);
    std::set<uint64_t> dense;
    if (const ojson* only = r.find("mlp_only_layers")) {
      if (!only->is_array()) r.bad("mlp_only_layers", "must be a list of layer indices");
      for (const auto& v : *only) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<uint64_t>() >= m.layers)
          r.bad("mlp_only_layers", "must hold layer indices below num_hidden_layers");
        dense.insert(v.get<uint64_t>());
      }
    }
    // Qwen2MoeDecoderLayer: sparse when not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0.
    m.moe_layer.resize(m.layers);
    bool any_dense = false;
    for (uint64_t i = 0; i < m.layers; ++i) {
      m.moe_layer[i] = !dense.count(i) && (i + 1) % step == 0;
      any_dense |= !m.moe_layer[i];
    }
    if (!any_dense) m.intermediate = 0;
  }
  m.moe = moe;
}

// The recipe must describe the tensor layout this family has (fused or separate projections).
void check_recipe(const Recipe& recipe, const ModelConfig& m, const std::string& label) {
  if (std::find(recipe.architectures().begin(), recipe.architectures().end(), m.architecture) ==
      recipe.architectures().end())
    fail(Errc::kInvalidArgument, recipe.path(), "", "recipe '" + recipe.name() + "' does not list architecture " + m.architecture);
  struct Probe {
    const char* name;
    TensorRole role;
  };
  std::vector<Probe> probes;
  if (m.fused_qkv) probes.push_back({"model.layers.0.self_attn.qkv_proj.weight", TensorRole::kFusedQkv});
  else probes.push_back({"model.layers.0.self_attn.q_proj.weight", TensorRole::kQHeads});
  probes.push_back({"model.layers.0.self_attn.o_proj.weight", TensorRole::kRow});
  probes.push_back({"model.embed_tokens.weight", TensorRole::kVocab});
  for (const auto& p : probes) {
    const RecipeRule* rule = recipe.match(p.name);
    if (!rule || rule->role != p.role)
      fail(Errc::kInvalidArgument, recipe.path(), "", std::string("recipe '") + recipe.name() + "' does not give " + p.name +
                                                          " the role " + tensor_role_name(p.role) + " that " +
                                                          m.architecture + " (" + label + ") needs");
  }
}

}  // namespace

const char* family_name(Family f) {
  switch (f) {
    case Family::kLlama: return "llama";
    case Family::kMistral: return "mistral";
    case Family::kQwen2: return "qwen2";
    case Family::kQwen3: return "qwen3";
    case Family::kPhi3: return "phi3";
    case Family::kMixtral: return "mixtral";
    case Family::kQwen2Moe: return "qwen2_moe";
    case Family::kQwen3Moe: return "qwen3_moe";
  }
  return "?";
}

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kLlama3: return "llama3";
  }
  return "?";
}

double ModelConfig::attention_scale() const { return 1.0 / std::sqrt(static_cast<double>(head_dim)); }

ModelConfig read_model_config(const ojson& c, const Recipe& recipe, const std::string& label) {
  if (!c.is_object()) fail(Errc::kInvalidArgument, label, "", "config.json must be a JSON object");
  Reader r(c, label);
  const ojson* archs = r.find("architectures");
  if (!archs || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    r.bad("architectures", "must be a non-empty list naming the model class");
  if (archs->size() != 1) r.unsupported("architectures", "lists " + std::to_string(archs->size()) + " classes; one is expected");
  ModelConfig m;
  m.architecture = (*archs)[0].get<std::string>();
  const FamilyInfo* fam = nullptr;
  for (const auto& f : kFamilies)
    if (m.architecture == f.architecture) fam = &f;
  if (!fam) {
    for (const auto& x : kRefused)
      if (m.architecture == x.architecture) r.unsupported("architectures", m.architecture + ": " + x.why);
    std::string known;
    for (const auto& f : kFamilies) known += (known.empty() ? "" : ", ") + std::string(f.architecture);
    r.unsupported("architectures", m.architecture + " is not an architecture the runtime knows (" + known + ")");
  }
  m.family = fam->family;
  m.recipe = recipe.name();
  if (recipe.name() != fam->recipe)
    fail(Errc::kInvalidArgument, recipe.path(), "",
         "recipe '" + recipe.name() + "' is not the '" + fam->recipe + "' recipe " + m.architecture + " needs");

  const std::string act = r.string_in(c, "hidden_act", "", "silu");
  if (act != "silu") r.unsupported("hidden_act", "'" + act + "' (the gated MLP is implemented with SiLU only)");

  m.vocab = r.uint("vocab_size", 1, kMaxVocab);
  m.hidden = r.uint("hidden_size", 1, kMaxDim);
  m.layers = r.uint("num_hidden_layers", 1, kMaxLayers);
  m.heads = r.uint("num_attention_heads", 1, 1u << 14);
  const bool kv_default = fam->family == Family::kLlama || fam->family == Family::kPhi3;
  m.kv_heads = r.uint("num_key_value_heads", 1, m.heads, kv_default ? std::optional<uint64_t>(m.heads) : std::nullopt);
  if (m.heads % m.kv_heads != 0)
    r.bad("num_key_value_heads", std::to_string(m.kv_heads) + " does not divide num_attention_heads " + std::to_string(m.heads));
  const uint64_t default_head_dim = fam->default_head_dim ? fam->default_head_dim : m.hidden / m.heads;
  m.head_dim = r.uint("head_dim", 1, 1u << 14, default_head_dim);
  if (!r.find("head_dim") && !fam->default_head_dim && m.hidden % m.heads != 0)
    r.bad("hidden_size", "is not a multiple of num_attention_heads and no head_dim is given");
  m.max_position = r.uint("max_position_embeddings", 0, 1ull << 40, 0);
  m.rms_eps = r.number("rms_norm_eps", fam->rms_eps);
  if (!(m.rms_eps >= 0)) r.bad("rms_norm_eps", "must be >= 0");
  read_rope(r, *fam, m.head_dim, m.rope);
  m.tied_embeddings = r.boolean("tie_word_embeddings", false);

  switch (fam->family) {
    case Family::kLlama:
      m.qkv_bias = m.o_bias = r.boolean("attention_bias", false);
      m.mlp_bias = r.boolean("mlp_bias", false);
      break;
    case Family::kQwen2: m.qkv_bias = true; break;  // Qwen2Attention: q/k/v bias=True, o bias=False
    case Family::kQwen2Moe: m.qkv_bias = r.boolean("qkv_bias", true); break;
    case Family::kQwen3:
    case Family::kQwen3Moe:
      m.qkv_bias = m.o_bias = r.boolean("attention_bias", false);
      m.qk_norm = true;
      break;
    case Family::kPhi3:
      m.fused_qkv = m.fused_gate_up = true;
      break;
    case Family::kMistral:
    case Family::kMixtral: break;
  }

  m.intermediate = r.uint("intermediate_size", 1, kMaxDim, fam->family == Family::kMixtral ? std::optional<uint64_t>(0) : std::nullopt);
  m.moe_layer.assign(m.layers, false);
  read_moe(r, *fam, m);
  m.sliding_window = read_sliding_windows(r, *fam, m.layers);

  if (const ojson* bos = r.find("bos_token_id")) m.bos_token = token_id(r, *bos, "bos_token_id");
  if (const ojson* eos = r.find("eos_token_id")) {
    if (eos->is_array()) {
      for (const auto& v : *eos)
        if (auto id = token_id(r, v, "eos_token_id")) m.eos_tokens.push_back(*id);
    } else if (auto id = token_id(r, *eos, "eos_token_id")) {
      m.eos_tokens.push_back(*id);
    }
  }
  check_recipe(recipe, m, label);
  return m;
}

ModelConfig model_config_of(const Checkpoint& ck) {
  const std::string label = (std::filesystem::path(ck.dir) / "config.json").string();
  if (!ck.config) fail(Errc::kNoCheckpoint, label, "", "config.json is missing: the model cannot be described without it");
  const ojson& c = *ck.config;
  std::optional<Recipe> recipe;
  if (c.contains("ckpt_parallel") && c["ckpt_parallel"].is_object() && c["ckpt_parallel"].contains("recipe") &&
      c["ckpt_parallel"]["recipe"].is_string())
    recipe = Recipe::named(c["ckpt_parallel"]["recipe"].get<std::string>());
  else
    recipe = Recipe::for_checkpoint(ck);
  return read_model_config(c, *recipe, label);
}

std::string ModelConfig::describe() const {
  std::string s = std::string(family_name(family)) + ": " + count_of(layers, "layer") + ", hidden " +
                  std::to_string(hidden) + ", " + count_of(heads, "head") + " / " + std::to_string(kv_heads) +
                  " KV x " + std::to_string(head_dim) + ", vocab " + std::to_string(vocab);
  if (moe) {
    s += ", " + count_of(moe->experts, "expert") + " top-" + std::to_string(moe->top_k) +
         (moe->normalize_top_k ? " renormalised" : "");
    if (moe->shared_intermediate) s += " + shared expert";
  } else {
    s += ", MLP " + std::to_string(intermediate);
  }
  s += std::string(", rope ") + rope_type_name(rope.type);
  if (rope.rotary_dim != head_dim) s += " on " + std::to_string(rope.rotary_dim) + " dims";
  if (tied_embeddings) s += ", tied embeddings";
  return s;
}

ojson ModelConfig::to_json() const {
  ojson j = ojson::object();
  j["architecture"] = architecture;
  j["family"] = family_name(family);
  j["recipe"] = recipe;
  j["vocab"] = vocab;
  j["hidden"] = hidden;
  j["intermediate"] = intermediate;
  j["layers"] = layers;
  j["heads"] = heads;
  j["kv_heads"] = kv_heads;
  j["head_dim"] = head_dim;
  j["max_position"] = max_position;
  j["rms_eps"] = rms_eps;
  j["rope"] = {{"type", rope_type_name(rope.type)},
               {"theta", rope.theta},
               {"rotary_dim", rope.rotary_dim},
               {"factor", rope.factor},
               {"low_freq_factor", rope.low_freq_factor},
               {"high_freq_factor", rope.high_freq_factor},
               {"original_max_position", rope.original_max_position}};
  j["tied_embeddings"] = tied_embeddings;
  j["qkv_bias"] = qkv_bias;
  j["o_bias"] = o_bias;
  j["mlp_bias"] = mlp_bias;
  j["qk_norm"] = qk_norm;
  j["fused_qkv"] = fused_qkv;
  j["fused_gate_up"] = fused_gate_up;
  j["sliding_window"] = sliding_window;
  if (moe)
    j["moe"] = {{"experts", moe->experts},
                {"top_k", moe->top_k},
                {"intermediate", moe->intermediate},
                {"normalize_top_k", moe->normalize_top_k},
                {"shared_intermediate", moe->shared_intermediate},
                {"layers", moe_layer}};
  return j;
}

}  // namespace ckpt::model
