#include "model/model_weights.h"

#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "ops/marlin_layout.h"

namespace ckpt::model {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors a checkpoint may carry that the runtime does not need: rotary caches (recomputed from
// the config), KV-cache and static activation scales (the runtime keeps activations and the KV
// cache in full precision).
bool unused_is_fine(const std::string& name) {
  for (const char* s : {".rotary_emb.inv_freq", ".k_scale", ".v_scale", ".input_scale"})
    if (ends_with(name, s)) return true;
  return false;
}

std::string layer_prefix(uint64_t i) { return "model.layers." + std::to_string(i) + "."; }

// One opened target (a directory, or one rank of one stage) with name lookups and the set of
// tensors the model took from it.
struct Source {
  const validate::Target* target = nullptr;
  HostTensors* host = nullptr;
  uint64_t rank = 0, stage = 0;
  std::map<std::string, const TensorRef*> tensors;
  std::map<std::string, const validate::LinearWeight*> linears;
  std::set<std::string> used;

  const std::string& file_of(const TensorRef& t) const { return target->ck.files[t.view.file].path; }
  const TensorRef* find(const std::string& name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : it->second;
  }
  const TensorRef& require(const std::string& name) const {
    const TensorRef* t = find(name);
    if (!t) fail(Errc::kMissingField, target->dir, name, "tensor is missing (the model needs it)");
    return *t;
  }
  std::vector<double> vector(const std::string& name, uint64_t size) {
    const TensorRef& t = require(name);
    if (t.shape() != std::vector<uint64_t>{size})
      fail(Errc::kTensorInvalidInfo, file_of(t), name,
           "shape " + shape_to_string(t.shape()) + ", expected [" + std::to_string(size) + "]");
    used.insert(name);
    std::vector<double> v = decode_vector(*host, t);
    // The bias of a Marlin Linear is stored as vLLM's marlin_permute_bias leaves it
    // (commands/marlin.h): back in output order.
    if (ends_with(name, ".bias")) {
      auto it = linears.find(name.substr(0, name.size() - 5) + ".weight");
      if (it != linears.end() && it->second->marlin) {
        std::vector<double> permuted = v;
        ops::marlin_unpermute_bias(reinterpret_cast<const uint8_t*>(permuted.data()), sizeof(double), size,
                                   reinterpret_cast<uint8_t*>(v.data()));
      }
    }
    return v;
  }
};

uint64_t total(const std::vector<AxisRange>& rs) {
  uint64_t n = 0;
  for (const auto& r : rs) n += r.length;
  return n;
}

}  // namespace

struct Model::Builder {
  Model& m;
  const ModelConfig& c;
  std::vector<std::vector<Source>> stages;  // [stage][rank]
  bool ep = false;
  uint64_t vocab_multiple = 64;

  Builder(Model& model, const ModelConfig& config) : m(model), c(config) {}

  AxisSplit split(uint64_t length, const std::vector<AxisPiece>& pieces, uint64_t rank, const Source& s,
                  const std::string& what) const {
    AxisSplit a = split_axis(length, pieces, m.tp_, rank);
    if (!a.refusal.empty())
      fail(Errc::kInvalidArgument, s.target->dir, "", what + " cannot be split " + std::to_string(m.tp_) + " ways: " + a.refusal);
    return a;
  }

  // The Linear `module` of source `s`: shape [n, k], optional bias of `bias_rows` (0: none
  // expected), output rows `rows` of the logical output.
  RankLinear linear(Source& s, const std::string& module, uint64_t n, uint64_t k, std::vector<AxisRange> rows,
                    bool bias) {
    const std::string name = module + ".weight";
    auto it = s.linears.find(name);  // INT4 Linears have no tensor of this name (quant/scheme.h)
    if (it == s.linears.end()) {
      const TensorRef& t = s.require(name);
      fail(Errc::kUnsupported, s.file_of(t), name,
           "tensor is not a Linear weight the runtime can multiply with (" + std::string(dtype_name(t.dtype())) + " " +
               shape_to_string(t.shape()) + ", " + s.target->linear_source + ")");
    }
    const validate::LinearWeight& lw = *it->second;
    if (lw.n != n || lw.k != k)
      fail(Errc::kTensorInvalidInfo, s.file_of(*lw.weight), name,
           "shape [" + std::to_string(lw.n) + ", " + std::to_string(lw.k) + "], expected [" + std::to_string(n) + ", " +
               std::to_string(k) + "]" + (m.tp_ > 1 ? " (this rank's share at tp " + std::to_string(m.tp_) + ")" : ""));
    s.used.insert(lw.weight->name);
    if (lw.scale) s.used.insert(lw.scale->name);
    for (const TensorRef* x : lw.owned) s.used.insert(x->name);
    RankLinear r;
    r.module = module;
    r.weight = stored_linear(lw, *s.host);
    r.rows = std::move(rows);
    if (bias) r.bias = s.vector(module + ".bias", n);
    return r;
  }

  // A whole 1-D tensor replicated on every rank of a stage: decoded from rank 0, marked used on all.
  std::vector<double> replicated(std::vector<Source>& ranks, const std::string& name, uint64_t size) {
    for (size_t r = 1; r < ranks.size(); ++r) {
      ranks[r].require(name);
      ranks[r].used.insert(name);
    }
    return ranks[0].vector(name, size);
  }

  std::shared_ptr<const LinearWeights> replicated_linear(std::vector<Source>& ranks, const std::string& module,
                                                          uint64_t n, uint64_t k) {
    for (size_t r = 1; r < ranks.size(); ++r) linear(ranks[r], module, n, k, {{0, n}}, false);
    return linear(ranks[0], module, n, k, {{0, n}}, false).weight;
  }

  std::vector<Source>& stage_holding(const std::string& name) {
    for (auto& st : stages)
      if (st[0].find(name)) return st;
    fail(Errc::kMissingField, m.path_, name, "tensor is missing from every directory (the model needs it)");
  }

  RankMlp mlp(Source& s, const std::string& prefix, uint64_t inter, bool split, bool names_w, bool bias,
              std::vector<double>* down_bias) {
    RankMlp out;
    const uint64_t rank = s.rank;
    const std::vector<AxisRange> rows =
        split ? this->split(inter, plain_axis(), rank, s, prefix + " intermediate size").ranges
              : std::vector<AxisRange>{{0, inter}};
    const uint64_t local = total(rows);
    out.local_intermediate = local;
    if (c.fused_gate_up) {
      std::vector<AxisRange> gu = rows;
      for (const auto& r : rows) gu.push_back({inter + r.begin, r.length});
      out.gate_up = linear(s, prefix + "gate_up_proj", 2 * local, c.hidden, gu, bias);
    } else {
      out.gate = linear(s, prefix + (names_w ? "w1" : "gate_proj"), local, c.hidden, rows, bias);
      out.up = linear(s, prefix + (names_w ? "w3" : "up_proj"), local, c.hidden, rows, bias);
    }
    out.down = linear(s, prefix + (names_w ? "w2" : "down_proj"), c.hidden, local, {{0, c.hidden}}, false);
    if (bias) {
      const std::string b = prefix + (names_w ? "w2" : "down_proj") + ".bias";
      if (s.rank == 0) *down_bias = s.vector(b, c.hidden);
      else s.used.insert(s.require(b).name);
    }
    return out;
  }

  RankAttention attention(Source& s, const std::string& p, std::vector<double>* o_bias) {
    RankAttention a;
    const uint64_t hd = c.head_dim;
    const AxisRange qr = split(c.q_rows(), q_heads_axis(c.heads), s.rank, s, "num_attention_heads").ranges.at(0);
    const AxisRange kr = split(c.kv_rows(), kv_heads_axis(c.kv_heads), s.rank, s, "num_key_value_heads").ranges.at(0);
    for (uint64_t h = qr.begin / hd; h < (qr.begin + qr.length) / hd; ++h) a.q_heads.push_back(h);
    for (uint64_t h = kr.begin / hd; h < (kr.begin + kr.length) / hd; ++h) a.kv_heads.push_back(h);
    const uint64_t group = c.heads / c.kv_heads;
    for (uint64_t h : a.q_heads)
      if (h / group < a.kv_heads.front() || h / group > a.kv_heads.back())
        fail(Errc::kInvalidArgument, s.target->dir, "", "query head " + std::to_string(h) + " has no KV head on this rank");
    if (c.fused_qkv) {
      std::vector<AxisRange> rows = {qr, {c.q_rows() + kr.begin, kr.length}, {c.q_rows() + c.kv_rows() + kr.begin, kr.length}};
      a.qkv = linear(s, p + "self_attn.qkv_proj", qr.length + 2 * kr.length, c.hidden, rows, c.qkv_bias);
    } else {
      a.q = linear(s, p + "self_attn.q_proj", qr.length, c.hidden, {qr}, c.qkv_bias);
      a.k = linear(s, p + "self_attn.k_proj", kr.length, c.hidden, {kr}, c.qkv_bias);
      a.v = linear(s, p + "self_attn.v_proj", kr.length, c.hidden, {kr}, c.qkv_bias);
    }
    a.o = linear(s, p + "self_attn.o_proj", c.hidden, qr.length, {{0, c.hidden}}, false);
    if (c.o_bias) {
      const std::string b = p + "self_attn.o_proj.bias";
      if (s.rank == 0) *o_bias = s.vector(b, c.hidden);
      else s.used.insert(s.require(b).name);
    }
    return a;
  }

  void layer(uint64_t i) {
    const std::string p = layer_prefix(i);
    std::vector<Source>& ranks = stage_holding(p + "input_layernorm.weight");
    Layer L;
    L.input_norm = replicated(ranks, p + "input_layernorm.weight", c.hidden);
    L.post_norm = replicated(ranks, p + "post_attention_layernorm.weight", c.hidden);
    if (c.qk_norm) {
      L.q_norm = replicated(ranks, p + "self_attn.q_norm.weight", c.head_dim);
      L.k_norm = replicated(ranks, p + "self_attn.k_norm.weight", c.head_dim);
    }
    for (auto& s : ranks) L.attention.push_back(attention(s, p, &L.o_bias));
    L.moe = c.moe_layer[i];
    if (!L.moe) {
      for (auto& s : ranks) L.mlp.push_back(mlp(s, p + "mlp.", c.intermediate, true, false, c.mlp_bias, &L.down_bias));
      m.layers_.push_back(std::move(L));
      return;
    }
    const MoeConfig& moe = *c.moe;
    const bool mixtral = c.family == Family::kMixtral;
    const std::string block = p + (mixtral ? "block_sparse_moe." : "mlp.");
    L.router_module = block + "gate";
    L.router = replicated_linear(ranks, L.router_module, moe.experts, c.hidden);
    if (moe.shared_intermediate) L.shared_gate = replicated_linear(ranks, block + "shared_expert_gate", 1, c.hidden);
    std::vector<int> holders(moe.experts, 0);
    for (auto& s : ranks) {
      RankMoe rm;
      for (uint64_t e = 0; e < moe.experts; ++e) {
        const std::string ep_prefix = block + "experts." + std::to_string(e) + ".";
        const bool held = s.find(ep_prefix + (mixtral ? "w2.weight" : "down_proj.weight")) != nullptr;
        if (!held && !ep)
          fail(Errc::kMissingField, s.target->dir, ep_prefix + (mixtral ? "w2.weight" : "down_proj.weight"),
               "expert tensor is missing (experts are split over every rank unless sharded with --ep)");
        if (held) {
          rm.experts.push_back(mlp(s, ep_prefix, moe.intermediate, !ep, mixtral, false, nullptr));
          ++holders[e];
        } else {
          rm.experts.emplace_back();
        }
      }
      if (moe.shared_intermediate)
        rm.shared = mlp(s, block + "shared_expert.", moe.shared_intermediate, true, false, false, nullptr);
      L.experts.push_back(std::move(rm));
    }
    for (uint64_t e = 0; e < moe.experts; ++e)
      if (holders[e] != (ep ? 1 : static_cast<int>(m.tp_)))
        fail(Errc::kInvalidArgument, m.path_, block + "experts." + std::to_string(e),
             "expert is held by " + std::to_string(holders[e]) + " ranks (expected " + (ep ? "1" : std::to_string(m.tp_)) + ")");
    m.layers_.push_back(std::move(L));
  }

  // A vocab-parallel table of each rank of `ranks`.
  std::vector<VocabSlice> vocab_table(std::vector<Source>& ranks, const std::string& name) {
    std::vector<VocabSlice> out;
    VocabSplit v{c.vocab, c.vocab, ""};
    if (m.tp_ > 1) {
      v = split_vocab(c.vocab, vocab_multiple, m.tp_);
      if (!v.refusal.empty()) fail(Errc::kInvalidArgument, ranks[0].target->dir, name, v.refusal);
    }
    for (auto& s : ranks) {
      const TensorRef& t = s.require(name);
      if (t.shape() != std::vector<uint64_t>{v.per_rank, c.hidden})
        fail(Errc::kTensorInvalidInfo, s.file_of(t), name,
             "shape " + shape_to_string(t.shape()) + ", expected [" + std::to_string(v.per_rank) + ", " +
                 std::to_string(c.hidden) + "]" + (m.tp_ > 1 ? " (vocab " + std::to_string(c.vocab) + " padded and split)" : ""));
      VocabSlice slice;
      slice.rows = v.real_rows(s.rank, c.vocab);
      auto it = s.linears.find(name);
      if (it != s.linears.end()) {
        slice.table = stored_linear(*it->second, *s.host);
        if (it->second->scale) s.used.insert(it->second->scale->name);
      } else {
        validate::LinearWeight lw;
        lw.name = name;
        lw.weight = &t;
        lw.n = t.shape()[0];
        lw.k = t.shape()[1];
        if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
          fail(Errc::kUnsupported, s.file_of(t), name, std::string(dtype_name(t.dtype())) + " table: f32, f16 or bf16 expected");
        slice.table = stored_linear(lw, *s.host);
      }
      s.used.insert(name);
      out.push_back(std::move(slice));
    }
    return out;
  }

  void check_all_used() {
    for (auto& st : stages)
      for (auto& s : st)
        for (const auto& t : s.target->ck.tensors)
          if (!s.used.count(t.name) && !unused_is_fine(t.name))
            fail(Errc::kUnsupported, s.file_of(t), t.name,
                 std::string("tensor is not part of the ") + family_name(c.family) +
                     " model the runtime computes (from config.json); refusing to ignore it");
  }
};

std::unique_ptr<Model> Model::load(const validate::Layout& layout) {
  std::unique_ptr<Model> m(new Model());
  m->path_ = layout.root;
  if (layout.targets.empty()) fail(Errc::kNoCheckpoint, layout.root, "", "no checkpoint directory found");
  for (const auto& t : layout.targets)
    if (!t->opened) fail(Errc::kNoCheckpoint, t->dir, "", "checkpoint could not be opened");
  const validate::Target& first = *layout.targets.front();
  m->config_ = model_config_of(first.ck);
  Builder b(*m, m->config_);
  if (first.parallel) {
    const ojson& p = *first.parallel;
    auto num = [&](const char* key, uint64_t fallback) {
      return p.contains(key) && p[key].is_number_unsigned() ? p[key].get<uint64_t>() : fallback;
    };
    m->tp_ = std::max<uint64_t>(1, num("tp_size", 1));
    m->pp_ = std::max<uint64_t>(1, num("pp_size", 1));
    b.ep = p.value("ep", ojson(false)) == true;
    if (p.contains("vocab_padding") && p["vocab_padding"].is_object() && p["vocab_padding"].contains("multiple") &&
        p["vocab_padding"]["multiple"].is_number_unsigned())
      b.vocab_multiple = std::max<uint64_t>(1, p["vocab_padding"]["multiple"].get<uint64_t>());
  }
  b.stages.resize(m->pp_);
  for (const auto& t : layout.targets) {
    const uint64_t stage = static_cast<uint64_t>(t->stage), rank = static_cast<uint64_t>(t->rank);
    if (stage >= m->pp_ || rank >= m->tp_)
      fail(Errc::kInvalidArgument, t->dir, "", "rank directory outside tp " + std::to_string(m->tp_) + " x pp " + std::to_string(m->pp_));
    m->host_.push_back(std::make_unique<HostTensors>(t->ck));
    Source s;
    s.target = t.get();
    s.host = m->host_.back().get();
    s.rank = rank;
    s.stage = stage;
    for (const auto& x : t->ck.tensors) s.tensors[x.name] = &x;
    for (const auto& lw : t->linears) s.linears[lw.name] = &lw;
    b.stages[stage].push_back(std::move(s));
  }
  for (uint64_t s = 0; s < m->pp_; ++s) {
    auto& st = b.stages[s];
    std::sort(st.begin(), st.end(), [](const Source& a, const Source& x) { return a.rank < x.rank; });
    if (st.size() != m->tp_)
      fail(Errc::kInvalidArgument, layout.root, "", "stage " + std::to_string(s) + " has " + std::to_string(st.size()) +
                                                        " ranks, expected " + std::to_string(m->tp_));
    for (uint64_t r = 0; r < m->tp_; ++r)
      if (st[r].rank != r) fail(Errc::kInvalidArgument, layout.root, "", "rank " + std::to_string(r) + " is missing");
  }
  for (uint64_t i = 0; i < m->config_.layers; ++i) b.layer(i);
  m->embed_ = b.vocab_table(b.stage_holding("model.embed_tokens.weight"), "model.embed_tokens.weight");
  auto& last = b.stages.back();
  m->final_norm_ = b.replicated(last, "model.norm.weight", m->config_.hidden);
  if (m->config_.tied_embeddings) {
    // transformers ties lm_head to the input embedding; a stored lm_head.weight is not read.
    for (auto& s : last)
      if (s.find("lm_head.weight")) s.used.insert("lm_head.weight");
    m->lm_head_ = b.vocab_table(last, "model.embed_tokens.weight");
  } else {
    m->lm_head_ = b.vocab_table(last, "lm_head.weight");
  }
  b.check_all_used();
  return m;
}

std::unique_ptr<Model> Model::open(const std::string& path) {
  auto layout = std::make_unique<validate::Layout>();
  validate::FailFn fail_fn = [](const std::string& check, const std::string& file, const std::string& tensor,
                                const std::string& message) { fail(Errc::kCheckFailed, file, tensor, check + ": " + message); };
  *layout = validate::open_layout(path, fail_fn);
  validate::check_parallel_layout(*layout, fail_fn);
  std::unique_ptr<Model> m = load(*layout);
  m->owned_layout_ = std::move(layout);
  return m;
}

std::string Model::formats() const {
  std::map<std::string, uint64_t> count;
  auto add = [&](const RankLinear& l) {
    if (l.present()) ++count[l.weight->format()];
  };
  auto add_mlp = [&](const RankMlp& x) {
    for (const RankLinear* l : {&x.gate, &x.up, &x.gate_up, &x.down}) add(*l);
  };
  for (const auto& L : layers_) {
    for (const auto& a : L.attention)
      for (const RankLinear* l : {&a.q, &a.k, &a.v, &a.qkv, &a.o}) add(*l);
    for (const auto& x : L.mlp) add_mlp(x);
    for (const auto& e : L.experts) {
      for (const auto& x : e.experts) add_mlp(x);
      add_mlp(e.shared);
    }
  }
  std::string s;
  for (const auto& [k, v] : count) s += (s.empty() ? "" : ", ") + std::to_string(v) + " " + k;
  return s;
}

std::string Model::parallelism() const {
  if (tp_ == 1 && pp_ == 1) return "";
  std::string s = "tp " + std::to_string(tp_);
  if (pp_ > 1) s += " x pp " + std::to_string(pp_);
  return s;
}

}  // namespace ckpt::model
