#include "commands/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "commands/rechunk.h"
#include "core/error.h"
#include "model/model_config.h"
#include "ops/cast.h"
#include "ops/cast_op.h"
#include "ops/ggml_producer.h"

namespace ckpt {

using ops::GgmlType;

namespace {

// One GGUF tensor before its type is chosen: the torch-order shape and the source views whose
// row-major concatenation it is.
struct Pending {
  std::string name;
  std::vector<uint64_t> shape;
  std::vector<SourceView> pieces;  // empty: generated (rope_freqs)
  std::vector<float> generated;
};

// A tensor made in memory (rope_freqs.weight).
class FloatsProducer : public Producer {
 public:
  explicit FloatsProducer(std::vector<float> v) : v_(std::move(v)) {}
  uint64_t nbytes() const override { return v_.size() * 4; }
  void produce(const SourceReader&, uint64_t begin, uint64_t n, uint8_t* out) const override {
    std::memcpy(out, reinterpret_cast<const uint8_t*>(v_.data()) + begin, n);
  }
  ojson describe() const override {
    ojson d = ojson::object();
    d["op"] = "generated F32";
    d["values"] = v_.size();
    return d;
  }

 private:
  std::vector<float> v_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// llama.cpp's architecture names (src/llama-arch.cpp) for the families convert maps
// (conversion/llama.py registers Llama, Mistral and Mixtral on LlamaModel).
std::string gguf_arch_of(const model::ModelConfig& mc, const std::string& label) {
  switch (mc.family) {
    case model::Family::kLlama:
    case model::Family::kMistral:
    case model::Family::kMixtral: return "llama";
    case model::Family::kQwen2: return "qwen2";
    case model::Family::kQwen3: return "qwen3";
    case model::Family::kPhi3: return "phi3";
    default: break;
  }
  fail(Errc::kUnsupported, label, "", "ckpt gguf does not export " + mc.architecture +
                                          " (supported: Llama, Mistral, Mixtral, Qwen2, Qwen3, Phi-3)");
}

// HF name within a layer -> GGUF name within blk.N (gguf-py/gguf/tensor_mapping.py).
const std::map<std::string, std::string>& layer_names() {
  static const std::map<std::string, std::string> m = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.o_proj.bias", "attn_output.bias"},
      {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"mlp.gate_proj.bias", "ffn_gate.bias"},
      {"mlp.up_proj.bias", "ffn_up.bias"},
      {"mlp.down_proj.bias", "ffn_down.bias"},
      {"mlp.gate_up_proj.weight", "ffn_up.weight"},
      {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
  };
  return m;
}

// Mixtral experts: w1 -> ffn_gate_exps, w3 -> ffn_up_exps, w2 -> ffn_down_exps.
const char* expert_stack_name(const std::string& w) {
  if (w == "w1.weight") return "ffn_gate_exps.weight";
  if (w == "w3.weight") return "ffn_up_exps.weight";
  if (w == "w2.weight") return "ffn_down_exps.weight";
  return nullptr;
}

// The rope_freqs.weight divisors of Llama-3.1's "llama3" rope scaling, in float32 as
// conversion/llama.py LlamaModel.generate_extra_tensors computes them with torch.
std::vector<float> llama3_rope_freqs(const model::ModelConfig& mc) {
  const auto& r = mc.rope;
  const float base = static_cast<float>(r.theta);
  const uint64_t dim = mc.head_dim;
  const float factor = static_cast<float>(r.factor);
  const float low = static_cast<float>(r.low_freq_factor);
  const double old_ctx = static_cast<double>(r.original_max_position);
  const float low_wavelen = static_cast<float>(old_ctx / r.low_freq_factor);
  const float high_wavelen = static_cast<float>(old_ctx / r.high_freq_factor);
  const float high_minus_low = static_cast<float>(r.high_freq_factor - r.low_freq_factor);
  std::vector<float> out;
  for (uint64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(dim));
    const float wavelen = static_cast<float>(2 * M_PI) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const float smooth = (static_cast<float>(old_ctx) / wavelen - low) / high_minus_low;
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

// llama_ftype (include/llama.h) of each --type, for general.file_type.
uint32_t file_type_of(GgufType t) {
  switch (t) {
    case GgufType::kF32: return 0;
    case GgufType::kF16: return 1;
    case GgufType::kQ4_0: return 2;
    case GgufType::kQ4_1: return 3;
    case GgufType::kQ8_0: return 7;
    case GgufType::kQ4_K_M: return 15;
    case GgufType::kQ6_K: return 18;
    case GgufType::kBF16: return 32;
    case GgufType::kAuto: break;
  }
  throw std::logic_error("file_type_of: auto is resolved first");
}

// convert's rule for tensors kept in F32 whatever --outtype says (conversion/base.py
// prepare_tensors): 1-D tensors, norms, MoE routers, anything that is not a ".weight".
bool forced_f32(const Pending& p) {
  return p.shape.size() <= 1 || ends_with(p.name, "_norm.weight") || ends_with(p.name, "ffn_gate_inp.weight") ||
         !ends_with(p.name, ".weight");
}

// llama-quantize's choice of type per tensor (src/llama-quant.cpp: tensor_allows_quantization,
// llama_tensor_get_type_impl for the ftypes offered here, tensor_type_fallback). Called in the
// file's tensor order, which its counters depend on.
class QuantizeMix {
 public:
  QuantizeMix(GgufType ftype, const std::vector<Pending>& tensors, const model::ModelConfig& mc, const std::string& arch)
      : ftype_(ftype), layers_(static_cast<int>(mc.layers)), n_expert_(mc.moe ? mc.moe->experts : 0) {
    is_70b_ = arch == "llama" && mc.layers == 80 && mc.heads != mc.kv_heads;  // src/models/llama.cpp LLM_TYPE_70B
    for (const auto& t : tensors) {
      if (is_attn_v(t.name)) ++n_attention_wv_;
      if (t.name == "output.weight") tied_ = false;
    }
  }

  GgmlType choose(const std::string& name, uint64_t ne0, const std::string& label) {
    GgmlType t = default_type();
    if (name == "output.weight" || (tied_ && name == "token_embd.weight")) {
      if (ne0 % ops::ggml_type_info(t).block != 0) t = GgmlType::Q8_0;
      else if (t != GgmlType::Q8_0) t = GgmlType::Q6_K;
    } else if (name == "token_embd.weight") {
      // no rule for these ftypes
    } else if (is_attn_v(name)) {
      if (ftype_ == GgufType::kQ4_K_M && use_more_bits(i_attention_wv_, n_attention_wv_)) t = GgmlType::Q6_K;
      if (is_70b_ && t == GgmlType::Q4_K) t = GgmlType::Q5_K;
      if (n_expert_ == 8) t = GgmlType::Q8_0;
      ++i_attention_wv_;
    } else if (name.find("attn_k.weight") != std::string::npos) {
      if (n_expert_ == 8) t = GgmlType::Q8_0;
    } else if (name.find("ffn_down") != std::string::npos) {
      const int layer = n_expert_ > 1 ? block_of(name) : i_ffn_down_;
      if (ftype_ == GgufType::kQ4_K_M && use_more_bits(layer, layers_)) t = GgmlType::Q6_K;
      ++i_ffn_down_;
    } else if (name.find("attn_output.weight") != std::string::npos) {
      if (n_expert_ == 8 && ftype_ == GgufType::kQ4_K_M) t = GgmlType::Q5_K;
    }
    return fallback(t, ne0, name, label);
  }

 private:
  static bool is_attn_v(const std::string& n) {
    return n.find("attn_v.weight") != std::string::npos || n.find("attn_qkv.weight") != std::string::npos ||
           n.find("attn_kv_b.weight") != std::string::npos;
  }
  static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }
  static int block_of(const std::string& name) {
    int b = -1;
    std::sscanf(name.c_str(), "blk.%d.", &b);
    return b;
  }
  GgmlType default_type() const {
    switch (ftype_) {
      case GgufType::kQ4_0: return GgmlType::Q4_0;
      case GgufType::kQ4_1: return GgmlType::Q4_1;
      case GgufType::kQ4_K_M: return GgmlType::Q4_K;
      case GgufType::kQ6_K: return GgmlType::Q6_K;
      default: break;
    }
    throw std::logic_error("QuantizeMix: not a llama-quantize type");
  }
  static GgmlType fallback(GgmlType t, uint64_t ne0, const std::string& name, const std::string& label) {
    if (ne0 % ops::ggml_type_info(t).block == 0) return t;
    GgmlType f;
    switch (t) {
      case GgmlType::Q4_K: f = GgmlType::Q5_0; break;
      case GgmlType::Q5_K: f = GgmlType::Q5_1; break;
      case GgmlType::Q6_K: f = GgmlType::Q8_0; break;
      default:
        fail(Errc::kInvalidArgument, label, name,
             "rows of " + std::to_string(ne0) + " elements are not whole " + std::string(ops::ggml_type_info(t).name) +
                 " blocks (llama-quantize has no fallback for this type)");
    }
    return ne0 % ops::ggml_type_info(f).block == 0 ? f : GgmlType::F16;
  }

  GgufType ftype_;
  int layers_;
  uint64_t n_expert_;
  bool is_70b_ = false, tied_ = true;
  int n_attention_wv_ = 0, i_attention_wv_ = 0, i_ffn_down_ = 0;
};

bool is_llama_quantize_type(GgufType t) {
  return t == GgufType::kQ4_0 || t == GgufType::kQ4_1 || t == GgufType::kQ4_K_M || t == GgufType::kQ6_K;
}

// llama.cpp's loader order (see formats/gguf.h), which llama-quantize's counters follow.
std::vector<Pending> in_loader_order(std::vector<Pending> v) {
  auto block = [](const std::string& n) {
    int b = -1;
    std::sscanf(n.c_str(), "blk.%d.", &b);
    return b;
  };
  std::stable_sort(v.begin(), v.end(), [&](const Pending& a, const Pending& b) {
    const int la = block(a.name), lb = block(b.name);
    if (la != lb) return la < lb;
    return a.name < b.name;
  });
  return v;
}

void add_vocab(GgufMetadata& md, const GgufVocab& v, uint64_t rows, const std::string& label) {
  if (v.model != "llama" && v.model != "gpt2") throw std::logic_error("GgufVocab: model must be llama or gpt2");
  if (v.tokens.size() != v.types.size() || (v.model == "llama" && v.scores.size() != v.tokens.size()))
    throw std::logic_error("GgufVocab: tokens, types and scores differ in length");
  if (v.tokens.size() > rows)
    fail(Errc::kInvalidArgument, label, "token_embd.weight",
         "the tokenizer has " + std::to_string(v.tokens.size()) + " tokens but the embedding only " +
             std::to_string(rows) + " rows");
  std::vector<std::string> tokens = v.tokens;
  std::vector<int32_t> types = v.types;
  std::vector<float> scores = v.scores;
  // convert pads to the embedding's rows with "[PAD<i>]", UNUSED (conversion/base.py get_vocab_base,
  // _create_vocab_sentencepiece: score -10000).
  for (uint64_t i = v.tokens.size(); i < rows; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(5);
    if (v.model == "llama") scores.push_back(-10000.0f);
  }
  std::set<std::string> seen;
  for (const auto& t : tokens)
    if (!seen.insert(t).second)
      fail(Errc::kInvalidArgument, label, "", "token '" + t + "' appears twice in the vocabulary (llama.cpp aborts on duplicate tokens)");
  md.add_string("tokenizer.ggml.model", v.model);
  md.add_string("tokenizer.ggml.pre", v.pre);
  md.add_string_array("tokenizer.ggml.tokens", tokens);
  if (v.model == "llama") md.add_f32_array("tokenizer.ggml.scores", scores);
  md.add_i32_array("tokenizer.ggml.token_type", types);
  if (v.model == "gpt2") md.add_string_array("tokenizer.ggml.merges", v.merges);
  auto id = [&](const char* key, const std::optional<uint32_t>& x) {
    if (!x) return;
    if (*x >= rows) fail(Errc::kInvalidArgument, label, "", std::string(key) + " " + std::to_string(*x) + " is not a token id");
    md.add_u32(key, *x);
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.padding_token_id", v.pad);
  if (v.add_bos) md.add_bool("tokenizer.ggml.add_bos_token", *v.add_bos);
  if (v.add_eos) md.add_bool("tokenizer.ggml.add_eos_token", *v.add_eos);
  if (v.add_space_prefix) md.add_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix);
  if (!v.chat_template.empty()) md.add_string("tokenizer.chat_template", v.chat_template);
}

const ojson* config_key(const Checkpoint& ck, const char* key) {
  if (!ck.config || !ck.config->is_object() || !ck.config->contains(key)) return nullptr;
  const ojson& v = (*ck.config)[key];
  return v.is_null() ? nullptr : &v;
}

}  // namespace

std::optional<GgufType> gguf_type_from_name(const std::string& name) {
  static const std::map<std::string, GgufType> m = {
      {"f32", GgufType::kF32},   {"f16", GgufType::kF16},   {"bf16", GgufType::kBF16}, {"q8_0", GgufType::kQ8_0},
      {"q4_0", GgufType::kQ4_0}, {"q4_1", GgufType::kQ4_1}, {"q4_k", GgufType::kQ4_K_M}, {"q6_k", GgufType::kQ6_K},
      {"auto", GgufType::kAuto},
  };
  auto it = m.find(name);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

SourceView permute_for_llama_rope(const SourceView& rows, uint64_t heads) {
  const auto strides = rows.effective_strides();
  const uint64_t n = rows.shape.at(0);
  if (heads == 0 || n % heads || (n / heads) % 2) throw std::logic_error("permute_for_llama_rope: rows are not heads of even size");
  const uint64_t hd = n / heads;
  SourceView v = rows;
  const int64_t rs = strides[0];
  v.shape = {heads, hd / 2, 2};
  v.strides = {static_cast<int64_t>(hd) * rs, rs, static_cast<int64_t>(hd / 2) * rs};
  for (size_t d = 1; d < rows.shape.size(); ++d) {
    v.shape.push_back(rows.shape[d]);
    v.strides.push_back(strides[d]);
  }
  return v;
}

Plan plan_gguf(const Checkpoint& ck, const GgufVocab& vocab, const GgufOptions& o) {
  const std::string& label = o.file_name;
  const model::ModelConfig mc = model::model_config_of(ck);
  const std::string arch = gguf_arch_of(mc, ck.path);
  const bool llama_rope = arch == "llama";  // NORM rope: Q/K rows re-ordered (conversion/llama.py undo_permute)

  std::vector<Pending> pending;
  // experts[layer][stack name][expert] = view
  std::map<uint64_t, std::map<std::string, std::map<uint64_t, SourceView>>> experts;
  for (const auto& t : ck.tensors) {
    Pending p;
    p.shape = t.shape();
    p.pieces = {t.view};
    if (t.name == "model.embed_tokens.weight") p.name = "token_embd.weight";
    else if (t.name == "model.norm.weight") p.name = "output_norm.weight";
    else if (t.name == "lm_head.weight") p.name = "output.weight";
    else if (t.name.rfind("model.layers.", 0) == 0) {
      const size_t dot = t.name.find('.', 13);
      const std::string num = t.name.substr(13, dot == std::string::npos ? std::string::npos : dot - 13);
      if (dot == std::string::npos || num.empty() || num.find_first_not_of("0123456789") != std::string::npos)
        fail(Errc::kUnsupported, ck.path, t.name, "not a tensor of a decoder layer llama.cpp knows");
      const uint64_t layer = std::stoull(num);
      const std::string rest = t.name.substr(dot + 1);
      if (ends_with(rest, "rotary_emb.inv_freq")) continue;  // conversion/base.py drops it
      const std::string prefix = "blk." + num + ".";
      if (rest.rfind("block_sparse_moe.experts.", 0) == 0) {
        const std::string e = rest.substr(25);
        const size_t d = e.find('.');
        const char* stack = d == std::string::npos ? nullptr : expert_stack_name(e.substr(d + 1));
        if (!stack || e.substr(0, d).find_first_not_of("0123456789") != std::string::npos || d == 0)
          fail(Errc::kUnsupported, ck.path, t.name, "not a Mixtral expert weight (w1/w2/w3)");
        experts[layer][prefix + stack][std::stoull(e.substr(0, d))] = t.view;
        continue;
      }
      auto it = layer_names().find(rest);
      if (it == layer_names().end())
        fail(Errc::kUnsupported, ck.path, t.name, "llama.cpp's " + arch + " architecture has no tensor for it");
      p.name = prefix + it->second;
      if (llama_rope && (it->second == "attn_q.weight" || it->second == "attn_q.bias"))
        p.pieces = {permute_for_llama_rope(t.view, mc.heads)};
      if (llama_rope && (it->second == "attn_k.weight" || it->second == "attn_k.bias"))
        p.pieces = {permute_for_llama_rope(t.view, mc.kv_heads)};
    } else {
      fail(Errc::kUnsupported, ck.path, t.name, "llama.cpp's " + arch + " architecture has no tensor for it");
    }
    pending.push_back(std::move(p));
  }
  // Expert stacks: experts 0..E-1 of each layer as one [E, rows, cols] tensor (conversion/llama.py).
  const uint64_t n_experts = mc.moe ? mc.moe->experts : 0;
  for (auto& [layer, stacks] : experts) {
    for (auto& [name, by_expert] : stacks) {
      Pending p;
      p.name = name;
      for (uint64_t e = 0; e < n_experts; ++e) {
        auto it = by_expert.find(e);
        if (it == by_expert.end())
          fail(Errc::kInvalidArgument, ck.path, name, "expert " + std::to_string(e) + " of layer " + std::to_string(layer) + " is missing");
        if (!p.pieces.empty() && (it->second.shape != p.pieces[0].shape || it->second.dtype != p.pieces[0].dtype))
          fail(Errc::kInvalidArgument, ck.path, name, "experts of layer " + std::to_string(layer) + " differ in shape or dtype");
        p.pieces.push_back(it->second);
      }
      if (by_expert.size() != n_experts)
        fail(Errc::kInvalidArgument, ck.path, name, "layer " + std::to_string(layer) + " has more experts than num_local_experts");
      p.shape = {n_experts};
      p.shape.insert(p.shape.end(), p.pieces[0].shape.begin(), p.pieces[0].shape.end());
      pending.push_back(std::move(p));
    }
  }
  if (llama_rope && mc.rope.type == model::RopeType::kLlama3) {
    Pending p;
    p.name = "rope_freqs.weight";
    p.generated = llama3_rope_freqs(mc);
    p.shape = {p.generated.size()};
    pending.push_back(std::move(p));
  }
  pending = in_loader_order(std::move(pending));

  const auto embd = std::find_if(pending.begin(), pending.end(), [](const Pending& p) { return p.name == "token_embd.weight"; });
  if (embd == pending.end() || embd->shape.size() != 2)
    fail(Errc::kInvalidArgument, ck.path, "model.embed_tokens.weight", "the checkpoint has no 2-D token embedding");
  const uint64_t rows = embd->shape[0];

  // --type auto: convert's guess from the first tensor the checkpoint lists.
  GgufType type = o.type;
  if (type == GgufType::kAuto)
    type = !ck.tensors.empty() && ck.tensors.front().dtype() == DType::F16 ? GgufType::kF16 : GgufType::kBF16;
  std::optional<QuantizeMix> mix;
  if (is_llama_quantize_type(type)) mix.emplace(type, pending, mc, arch);

  std::map<std::string, GgmlType> types;
  std::vector<OutputTensor> tensors;
  std::map<std::string, uint64_t> type_counts;
  for (const auto& p : pending) {
    for (const auto& piece : p.pieces)
      if (!ops::is_cast_source(piece.dtype))
        fail(Errc::kUnsupported, ck.path, p.name, "GGUF export reads float tensors, not " + std::string(dtype_name(piece.dtype)));
    const uint64_t ne0 = p.shape.back();
    GgmlType t;
    if (forced_f32(p)) t = GgmlType::F32;
    else if (mix) t = mix->choose(p.name, ne0, label);
    else if (type == GgufType::kF32) t = GgmlType::F32;
    else if (type == GgufType::kF16) t = GgmlType::F16;
    else if (type == GgufType::kBF16) t = GgmlType::BF16;
    else t = ne0 % 32 == 0 ? GgmlType::Q8_0 : GgmlType::F16;  // q8_0: convert's QuantError fallback
    types[p.name] = t;
    ++type_counts[std::string(ops::ggml_type_info(t).name)];
    std::shared_ptr<Producer> producer;
    DType dt = DType::U8;
    if (!p.generated.empty()) {
      producer = std::make_shared<FloatsProducer>(p.generated);
      dt = DType::F32;
    } else if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
      dt = t == GgmlType::F32 ? DType::F32 : t == GgmlType::F16 ? DType::F16 : DType::BF16;
      const DType in = p.pieces[0].dtype;
      producer = in == dt ? std::make_shared<ViewProducer>(p.pieces)
                          : std::make_shared<ViewProducer>(p.pieces, std::make_shared<ops::CastOp>(in, dt));
    } else {
      producer = std::make_shared<GgmlBlockProducer>(p.pieces, ne0, t, label, p.name);
    }
    tensors.push_back({p.name, dt, p.shape, producer});
  }

  GgufMetadata md;
  md.add_string("general.architecture", arch);
  md.add_string("general.type", "model");
  std::string name = o.model_name;
  if (name.empty()) name = std::filesystem::path(ck.dir).lexically_normal().filename().string();
  if (name.empty() || name == ".") name = std::filesystem::absolute(ck.dir).lexically_normal().parent_path().filename().string();
  md.add_string("general.name", name);
  const std::string a = arch + ".";
  const uint64_t ffn = mc.moe ? mc.moe->intermediate : mc.intermediate;
  if (arch == "phi3") {
    // conversion/phi.py Phi3MiniModel.set_gguf_parameters.
    const ojson* orig = config_key(ck, "original_max_position_embeddings");
    if (!orig || !orig->is_number_unsigned())
      fail(Errc::kInvalidArgument, ck.path, "", "Phi-3 needs original_max_position_embeddings in config.json (convert_hf_to_gguf.py reads it)");
    md.add_u32(a + "context_length", static_cast<uint32_t>(mc.max_position));
    md.add_u32(a + "rope.scaling.original_context_length", orig->get<uint32_t>());
    md.add_u32(a + "embedding_length", static_cast<uint32_t>(mc.hidden));
    md.add_u32(a + "feed_forward_length", static_cast<uint32_t>(ffn));
    md.add_u32(a + "block_count", static_cast<uint32_t>(mc.layers));
    md.add_u32(a + "attention.head_count", static_cast<uint32_t>(mc.heads));
    md.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(mc.kv_heads));
    md.add_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(mc.rms_eps));
    md.add_u32(a + "rope.dimension_count",
               static_cast<uint32_t>(static_cast<uint64_t>(mc.rope.partial_rotary_factor * static_cast<double>(mc.hidden)) / mc.heads));
    md.add_f32(a + "rope.freq_base", static_cast<float>(mc.rope.theta));
    md.add_u32("general.file_type", file_type_of(type));
    const ojson* sw = config_key(ck, "sliding_window");
    md.add_u32(a + "attention.sliding_window", sw && sw->is_number_unsigned() ? sw->get<uint32_t>() : 0);
  } else {
    // conversion/base.py TextModel.set_gguf_parameters (+ LlamaModel's vocab_size and rope dims).
    md.add_u32(a + "block_count", static_cast<uint32_t>(mc.layers));
    if (mc.max_position) md.add_u32(a + "context_length", static_cast<uint32_t>(mc.max_position));
    md.add_u32(a + "embedding_length", static_cast<uint32_t>(mc.hidden));
    md.add_u32(a + "feed_forward_length", static_cast<uint32_t>(ffn));
    md.add_u32(a + "attention.head_count", static_cast<uint32_t>(mc.heads));
    md.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(mc.kv_heads));
    if (mc.rope.type == model::RopeType::kLinear) {
      md.add_string(a + "rope.scaling.type", "linear");
      md.add_f32(a + "rope.scaling.factor", static_cast<float>(mc.rope.factor));
    }
    md.add_f32(a + "rope.freq_base", static_cast<float>(mc.rope.theta));
    md.add_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(mc.rms_eps));
    if (mc.moe) {
      md.add_u32(a + "expert_count", static_cast<uint32_t>(mc.moe->experts));
      md.add_u32(a + "expert_used_count", static_cast<uint32_t>(mc.moe->top_k));
    }
    if (config_key(ck, "head_dim")) {
      md.add_u32(a + "attention.key_length", static_cast<uint32_t>(mc.head_dim));
      md.add_u32(a + "attention.value_length", static_cast<uint32_t>(mc.head_dim));
    }
    md.add_u32("general.file_type", file_type_of(type));
    if (arch == "llama") {
      md.add_u32(a + "vocab_size", static_cast<uint32_t>(mc.vocab));
      md.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(mc.head_dim));
    }
  }
  md.add_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
  add_vocab(md, vocab, rows, label);

  Plan plan;
  plan.command = "gguf";
  set_plan_sources(plan, ck);
  // Split into files (gguf-py gguf_writer.py add_tensor_info / add_shard_kv_data /
  // format_shard_names, SHARD_NAME_FORMAT in constants.py).
  std::vector<std::vector<OutputTensor>> shards(1);
  uint64_t shard_bytes = 0;
  const size_t tensor_total = tensors.size();
  for (auto& t : tensors) {
    const uint64_t nb = t.nbytes();
    if (o.split_max_bytes && !shards.back().empty() && shard_bytes + nb > o.split_max_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shard_bytes += nb;
    shards.back().push_back(std::move(t));
  }
  const size_t n = shards.size();
  if (n > 65535) fail(Errc::kInvalidArgument, label, "", "--split-max-size gives more than 65535 files (split.count is a u16)");
  std::string stem = o.file_name;
  if (const size_t dot = stem.rfind('.'); dot != std::string::npos && dot > 0) stem.resize(dot);
  for (size_t i = 0; i < n; ++i) {
    GgufMetadata shard_md = i == 0 ? md : GgufMetadata();
    if (n > 1) {
      shard_md.add_u16("split.no", static_cast<uint16_t>(i));
      shard_md.add_u16("split.count", static_cast<uint16_t>(n));
      shard_md.add_i32("split.tensors.count", static_cast<int32_t>(tensor_total));
    }
    OutputFile f;
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "-%05zu-of-%05zu.gguf", i + 1, n);
    f.name = n == 1 ? o.file_name : stem + suffix;
    f.container = gguf_container(std::move(shard_md), types);
    f.tensors = std::move(shards[i]);
    plan.files.push_back(std::move(f));
  }
  plan.notes["architecture"] = arch;
  plan.notes["file_type"] = file_type_of(type);
  ojson counts = ojson::object();
  for (const auto& [k, v] : type_counts) counts[k] = v;
  plan.notes["tensor_types"] = counts;
  plan.finalize();
  return plan;
}

}  // namespace ckpt
