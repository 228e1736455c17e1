#include "calib/calibrate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/file_io.h"
#include "core/sizes.h"
#include "formats/strict_json.h"
#include "model/cpu_forward.h"
#include "ops/float_convert.h"
#include "tokenizer/tokenizer.h"

namespace ckpt::calib {

const char* calib_method_name(CalibMethod m) { return m == CalibMethod::kGptq ? "gptq" : "awq"; }

// --- calibration data ------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Documents of a text file: blank-line separated (.txt) or the "text" of each JSONL line.
std::vector<std::string> text_documents(const std::string& path) {
  const std::string text = read_text_file(path);
  std::vector<std::string> docs;
  if (ends_with(path, ".jsonl")) {
    uint64_t line_no = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      StrictJsonResult r = parse_strict_json(line);
      if (!r.ok || !r.value.is_object() || !r.value.contains("text") || !r.value["text"].is_string())
        fail(Errc::kInvalidArgument, path, "",
             "line " + std::to_string(line_no) + " is not a JSON object with a string \"text\"" +
                 (r.ok ? std::string() : " (" + r.error + ")"));
      docs.push_back(r.value["text"].get<std::string>());
    }
    return docs;
  }
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string doc = text.substr(pos, end - pos);
    if (doc.find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back(std::move(doc));
    pos = end + 2;
  }
  return docs;
}

}  // namespace

model::TokenIds load_calibration(const std::string& path, const std::string& model_dir, uint64_t samples,
                                 uint64_t seq_len) {
  if (samples == 0 || seq_len == 0) fail(Errc::kInvalidArgument, path, "", "--samples and --seq-len must be positive");
  std::vector<int64_t> stream;
  if (ends_with(path, ".txt") || ends_with(path, ".jsonl")) {
    const std::vector<std::string> docs = text_documents(path);
    const std::string dir = std::filesystem::is_directory(model_dir)
                                ? model_dir
                                : std::filesystem::path(model_dir).parent_path().string();
    const tok::Tokenizer tk = tok::Tokenizer::load(dir);
    for (const auto& d : docs) {
      for (int32_t id : tk.encode(d, true)) stream.push_back(id);
      if (stream.size() >= samples * seq_len) break;
    }
  } else if (ends_with(path, ".safetensors") || ends_with(path, ".json") || ends_with(path, ".npy")) {
    stream = model::read_token_ids(path).ids;
  } else {
    fail(Errc::kInvalidArgument, path, "",
         "calibration file must be token ids (.safetensors, .json, .npy) or text (.txt, .jsonl)");
  }
  const uint64_t have = stream.size() / seq_len;
  if (have == 0)
    fail(Errc::kInvalidArgument, path, "",
         std::to_string(stream.size()) + " calibration tokens, fewer than one sequence of --seq-len " +
             std::to_string(seq_len));
  model::TokenIds out;
  out.sequences = std::min(have, samples);
  out.length = seq_len;
  out.ids.assign(stream.begin(), stream.begin() + static_cast<int64_t>(out.sequences * seq_len));
  return out;
}

// --- the layer loop --------------------------------------------------------------------------

namespace {

// A Linear whose weights are given values (the dequantized INT4 result): what the forward runs.
class ValuesLinear final : public model::LinearWeights {
 public:
  ValuesLinear(std::shared_ptr<const model::LinearWeights> orig, std::vector<double> values, std::string format)
      : orig_(std::move(orig)), values_(std::move(values)), format_(std::move(format)) {}
  model::WeightKind kind() const override { return model::WeightKind::kDense; }
  uint64_t out_features() const override { return orig_->out_features(); }
  uint64_t in_features() const override { return orig_->in_features(); }
  std::string format() const override { return format_; }
  void dequantize_rows(uint64_t begin, uint64_t count, double* out) const override {
    const uint64_t k = in_features();
    std::memcpy(out, values_.data() + begin * k, count * k * sizeof(double));
  }

 private:
  std::shared_ptr<const model::LinearWeights> orig_;
  std::vector<double> values_;
  std::string format_;
};

// The input site (ActivationObserver::on_input name) of each Linear of a dense layer.
const char* site_of(const std::string& short_name) {
  if (short_name == "self_attn.q_proj" || short_name == "self_attn.k_proj" || short_name == "self_attn.v_proj")
    return "self_attn.q_proj";
  if (short_name == "self_attn.o_proj") return "self_attn.o_proj";
  if (short_name == "mlp.gate_proj" || short_name == "mlp.up_proj") return "mlp.gate_proj";
  if (short_name == "mlp.down_proj") return "mlp.down_proj";
  return nullptr;
}

// The Linear `short_name` of a dense, tp 1 layer.
model::RankLinear& linear_of(model::Layer& L, const std::string& short_name) {
  model::RankAttention& a = L.attention.at(0);
  model::RankMlp& m = L.mlp.at(0);
  if (short_name == "self_attn.q_proj") return a.q;
  if (short_name == "self_attn.k_proj") return a.k;
  if (short_name == "self_attn.v_proj") return a.v;
  if (short_name == "self_attn.o_proj") return a.o;
  if (short_name == "mlp.gate_proj") return m.gate;
  if (short_name == "mlp.up_proj") return m.up;
  return m.down;
}

const char* kShortNames[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                             "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

// Per input site: the Hessian 2/n Σ xxᵀ and, for AWQ, Σ|x| and up to 512 evenly strided tokens.
struct SiteStats {
  explicit SiteStats(uint64_t k) : h(k), abs_sum(k, 0.0) {}
  Hessian h;
  std::vector<double> abs_sum;
  std::vector<double> sample;  // [sampled tokens, k]
  std::vector<double> all;     // AWQ, attention and MLP inputs: [every token, k], sequences in order
};

constexpr uint64_t kClipTokens = 512;  // AutoAWQ _search_best_clip n_sample_token

// AWQ scores a scale on the output of the module the balance Linears sit in (AutoAWQ
// `module2inspect`): self_attn for q/k/v, mlp for gate/up — the sub-blocks whose inputs are these
// sites. For v -> o and up -> down the module is the balance Linear itself.
bool awq_inspects_block(const std::string& site) { return site == "self_attn.q_proj" || site == "mlp.gate_proj"; }

class Collector final : public model::ActivationObserver {
 public:
  Collector(bool awq, uint64_t total_tokens) : awq_(awq), stride_(std::max<uint64_t>(1, total_tokens / kClipTokens)) {}
  void on(uint64_t, const std::string&, const double*, uint64_t, uint64_t) override {}
  void on_input(uint64_t, const std::string& name, const double* x, uint64_t tokens, uint64_t width) override {
    auto it = sites.find(name);
    if (it == sites.end()) it = sites.emplace(name, SiteStats(width)).first;
    SiteStats& s = it->second;
    s.h.add(x, tokens);
    if (!awq_) return;
    if (awq_inspects_block(name)) s.all.insert(s.all.end(), x, x + tokens * width);
    for (uint64_t t = 0; t < tokens; ++t) {
      const double* xt = x + t * width;
      for (uint64_t c = 0; c < width; ++c) s.abs_sum[c] += std::fabs(xt[c]);
      const uint64_t g = base + t;
      if (g % stride_ == 0 && s.sample.size() / width < kClipTokens) s.sample.insert(s.sample.end(), xt, xt + width);
    }
  }
  uint64_t base = 0;  // global index of the running sequence's first token
  std::map<std::string, SiteStats> sites;

 private:
  bool awq_;
  uint64_t stride_;
};

std::vector<double> rows_of(const model::LinearWeights& w) {
  std::vector<double> v(w.out_features() * w.in_features());
  w.dequantize_rows(0, w.out_features(), v.data());
  return v;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

double relative_error(const std::vector<double>& w, const std::vector<double>& q) {
  double num = 0, den = 0;
  for (size_t i = 0; i < w.size(); ++i) num += (w[i] - q[i]) * (w[i] - q[i]), den += w[i] * w[i];
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

void check_issue(const ops::Int4Issue& issue, const ops::Int4Scheme& s, const std::string& file, const std::string& module) {
  if (issue) ops::int4_fail(issue, s, file, module + ".weight");
}

// The stored value of a norm weight after smoothing: rounded to its dtype as written.
double round_to(DType d, double v) {
  if (d == DType::BF16) return ops::bf16_to_f32(ops::f64_to_bf16(v));
  if (d == DType::F16) return ops::f16_to_f32(ops::f64_to_f16(v));
  if (d == DType::F32) return static_cast<double>(static_cast<float>(v));
  return v;
}

// AWQ ---------------------------------------------------------------------------------------

// One smoothing pair: the previous op (a norm of the layer, or a Linear whose output rows feed
// the balance Linears) and the balance Linears sharing one input site.
struct Mapping {
  std::string prev;                  // "input_layernorm", "post_attention_layernorm", or a Linear short name
  std::vector<std::string> balance;  // short names
  std::string site;
};

// mean over rows of |w| / max|w| of its group (AutoAWQ _search_best_scale w_scale, group 128 or K).
std::vector<double> weight_means(const std::vector<const std::vector<double>*>& ws, uint64_t k, uint64_t group) {
  std::vector<double> mean(k, 0.0);
  uint64_t rows = 0;
  for (const auto* w : ws) {
    const uint64_t n = w->size() / k;
    for (uint64_t r = 0; r < n; ++r)
      for (uint64_t g0 = 0; g0 < k; g0 += group) {
        double mx = 0;
        for (uint64_t c = g0; c < g0 + group; ++c) mx = std::max(mx, std::fabs((*w)[r * k + c]));
        for (uint64_t c = g0; c < g0 + group; ++c) mean[c] += std::fabs((*w)[r * k + c]) / (mx + 1e-6);
      }
    rows += n;
  }
  for (double& m : mean) m /= static_cast<double>(rows);
  return mean;
}

// One point of the scale grid: s = x^ratio / (w^(1-ratio) + 1e-4) with duo scaling, x^ratio without.
struct AwqGridPoint {
  double ratio;
  bool duo;
};

// llm-compressor's grid for duo_scaling=True (modifiers/transform/awq/base.py
// _get_grid_search_params): the identity (ratio 0 without duo: s = 1, i.e. plain RTN) and the duo
// ratios i/18, i = 0..18 — 20 candidates like AutoAWQ's i/20, i = 0..19 (awq/quantize/quantizer.py
// _compute_best_scale), which never tries s = 1 and so can choose a scale whose loss is above plain
// RTN's; with the identity in the grid the chosen scale never scores worse than no smoothing.
std::vector<AwqGridPoint> awq_grid() {
  std::vector<AwqGridPoint> g = {{0.0, false}};
  for (int i = 0; i <= 18; ++i) g.push_back({i / 18.0, true});
  return g;
}

// Candidate scales of one grid point, clamped at 1e-4, over sqrt(max·min) (AutoAWQ and
// llm-compressor _compute_best_scale).
std::vector<double> awq_scales(const std::vector<double>& x_mean, const std::vector<double>& w_mean, AwqGridPoint p) {
  const uint64_t k = x_mean.size();
  std::vector<double> s(k);
  double mx = 0, mn = std::numeric_limits<double>::infinity();
  for (uint64_t c = 0; c < k; ++c) {
    const double v = p.duo ? std::pow(x_mean[c], p.ratio) / (std::pow(w_mean[c], 1 - p.ratio) + 1e-4)
                           : std::pow(x_mean[c], p.ratio);
    s[c] = std::max(v, 1e-4);
    mx = std::max(mx, s[c]);
    mn = std::min(mn, s[c]);
  }
  const double norm = std::sqrt(mx * mn);
  for (double& v : s) {
    v /= norm;
    if (!std::isfinite(v)) v = 1.0;
  }
  return s;
}

// Σ over rows of dᵀ G d, d = w − w' (G = XᵀX / n): the summed squared output change per token.
double gram_error(const std::vector<double>& g, const std::vector<double>& w, const std::vector<double>& w2, uint64_t k) {
  const uint64_t n = w.size() / k;
  double total = 0;
  std::vector<double> d(k);
  for (uint64_t r = 0; r < n; ++r) {
    for (uint64_t c = 0; c < k; ++c) d[c] = w[r * k + c] - w2[r * k + c];
    for (uint64_t a = 0; a < k; ++a) {
      if (d[a] == 0.0) continue;
      double s = 0;
      for (uint64_t b = 0; b < k; ++b) s += g[a * k + b] * d[b];
      total += d[a] * s;
    }
  }
  return total;
}

// RTN of w (float64 values, rounded to float32 as the quantizer's input) dequantized.
std::vector<double> fake_quant(const ops::Int4Scheme& scheme, const std::vector<double>& w, uint64_t k,
                               const std::string& file, const std::string& module) {
  Int4Weights q;
  const std::vector<float> f = to_float(w);
  check_issue(rtn_int4(scheme, f.data(), w.size() / k, k, &q), scheme, file, module);
  return std::move(q.dequantized);
}

// AutoAWQ _compute_best_clip: per row and group, the clamp range max|w|·(1 − i/20), i = 0..9,
// whose RTN changes the group's output on the sampled tokens least; w is clamped in place.
void awq_clip(const ops::Int4Scheme& scheme, std::vector<double>& w, uint64_t k, const std::vector<double>& x,
              const std::string& file, const std::string& module) {
  const uint64_t n = w.size() / k, m = x.size() / k;
  const uint64_t group = scheme.group_size > 0 ? static_cast<uint64_t>(scheme.group_size) : k;
  ops::Int4Scheme gs = scheme;
  gs.group_size = static_cast<int64_t>(group);
  std::vector<double> org(m), cur(group);
  for (uint64_t r = 0; r < n; ++r)
    for (uint64_t g0 = 0; g0 < k; g0 += group) {
      double* wg = &w[r * k + g0];
      double amax = 0;
      for (uint64_t c = 0; c < group; ++c) amax = std::max(amax, std::fabs(wg[c]));
      for (uint64_t t = 0; t < m; ++t) {
        double s = 0;
        for (uint64_t c = 0; c < group; ++c) s += x[t * k + g0 + c] * wg[c];
        org[t] = s;
      }
      double best_err = std::numeric_limits<double>::infinity(), best_max = amax;
      for (int i = 0; i < 10; ++i) {
        const double mx = amax * (1.0 - i / 20.0);
        for (uint64_t c = 0; c < group; ++c) cur[c] = std::clamp(wg[c], -mx, mx);
        const std::vector<double> q = fake_quant(gs, cur, group, file, module);
        double err = 0;
        for (uint64_t t = 0; t < m; ++t) {
          double s = 0;
          for (uint64_t c = 0; c < group; ++c) s += x[t * k + g0 + c] * q[c];
          err += (s - org[t]) * (s - org[t]);
        }
        err /= static_cast<double>(std::max<uint64_t>(m, 1));
        if (err < best_err) best_err = err, best_max = mx;
      }
      for (uint64_t c = 0; c < group; ++c) wg[c] = std::clamp(wg[c], -best_max, best_max);
    }
}

// The plan's dtype of an output tensor (norm weights keep the source dtype).
DType plan_dtype(const QuantizePlan& qp, const std::string& name) {
  for (const auto& f : qp.plan.files)
    for (const auto& t : f.tensors)
      if (t.name == name) return t.dtype;
  fail(Errc::kUnsupported, "", name, "tensor AWQ smooths is not in the output plan");
}

}  // namespace

Calibrated calibrate_int4(const std::string& src, const QuantizePlan& qp, const model::TokenIds& calib,
                          const CalibOptions& o, const std::function<void(uint64_t, uint64_t)>& layer_done) {
  std::unique_ptr<model::Model> m = model::Model::open(src);
  const model::ModelConfig& c = m->config();
  if (m->tp() != 1 || m->pp() != 1)
    fail(Errc::kUnsupported, src, "", "calibrated quantization reads a plain checkpoint, not a tensor/pipeline-parallel output");
  // Which modules to quantize, with their schemes.
  std::map<std::string, ops::Int4Scheme> wanted;
  for (const auto& q : qp.int4) wanted[q->tensor().substr(0, q->tensor().size() - 7)] = q->scheme();
  Calibrated out;
  out.method = o.method;
  out.samples = calib.sequences;
  out.seq_len = calib.length;
  const uint64_t L = calib.length;
  // Every planned Linear must be a decoder layer's Linear this loop reaches.
  std::map<std::string, bool> reached;
  for (const auto& [module, s] : wanted) reached[module] = false;

  model::CpuForward fwd(*m, 1, L);
  std::vector<std::vector<double>> hidden(calib.sequences);
  for (uint64_t s = 0; s < calib.sequences; ++s)
    hidden[s] = fwd.embed(std::vector<int64_t>(calib.row(s), calib.row(s) + L));

  const bool awq = o.method == CalibMethod::kAwq;
  for (uint64_t i = 0; i < c.layers; ++i) {
    model::Layer& layer = m->mutable_layer(i);
    if (layer.moe || layer.attention.at(0).qkv.present() || layer.mlp.at(0).gate_up.present())
      fail(Errc::kUnsupported, src, "",
           "layer " + std::to_string(i) + ": calibrated quantization supports dense layers with separate q/k/v and "
           "gate/up Linears (no MoE, no fused qkv/gate_up)");
    // Calibration pass over the layer as it is (GPTQ: on copies; AWQ: its output is propagated).
    Collector col(awq, calib.sequences * L);
    for (uint64_t s = 0; s < calib.sequences; ++s) {
      col.base = s * L;
      if (awq) {
        fwd.layer(i, hidden[s], L, &col);
      } else {
        std::vector<double> h = hidden[s];
        fwd.layer(i, h, L, &col);
      }
    }
    std::map<std::string, std::vector<double>> hmat;  // site -> H
    for (const auto& [name, st] : col.sites) hmat[name] = st.h.matrix();

    // The Linears of this layer to quantize, with their original weights.
    struct Work {
      std::string short_name, module, file;
      ops::Int4Scheme scheme;
      std::vector<double> orig, w;  // w: AWQ-smoothed working copy
      std::vector<double> in_scale, out_scale;  // AWQ: columns multiplied by, rows divided by
    };
    std::vector<Work> work;
    for (const char* sn : kShortNames) {
      model::RankLinear& rl = linear_of(layer, sn);
      auto it = wanted.find(rl.module);
      if (it == wanted.end()) continue;
      reached[rl.module] = true;
      Work wk{sn, rl.module, src, it->second, rows_of(*rl.weight), {}, {}, {}};
      wk.w = wk.orig;
      work.push_back(std::move(wk));
    }
    auto find_work = [&](const std::string& sn) -> Work* {
      for (auto& w : work)
        if (w.short_name == sn) return &w;
      return nullptr;
    };
    std::map<std::string, LinearResult> awq_choice;  // balance Linear -> its pair's awq_* fields
    // The attention or MLP block (by its input site) on every calibration sequence's recorded
    // input, with the balance Linears holding `qs` (empty: as they are) and the rest as it is.
    auto block_output = [&](const std::string& site, const std::vector<Work*>& bal, std::vector<std::vector<double>> qs) {
      std::vector<std::shared_ptr<const model::LinearWeights>> kept;
      for (size_t b = 0; b < qs.size(); ++b) {
        model::RankLinear& rl = linear_of(layer, bal[b]->short_name);
        kept.push_back(rl.weight);
        rl.weight = std::make_shared<ValuesLinear>(rl.weight, std::move(qs[b]), "awq candidate");
      }
      const std::vector<double>& in = col.sites.at(site).all;
      const uint64_t width = col.sites.at(site).h.width();
      std::vector<double> all, x, y;
      for (uint64_t sq = 0; sq < calib.sequences; ++sq) {
        x.assign(in.begin() + sq * L * width, in.begin() + (sq + 1) * L * width);
        if (site == "self_attn.q_proj") fwd.attention(i, x, L, y, nullptr);
        else fwd.mlp(i, x, L, y, nullptr);
        all.insert(all.end(), y.begin(), y.end());
      }
      for (size_t b = 0; b < kept.size(); ++b) linear_of(layer, bal[b]->short_name).weight = kept[b];
      return all;
    };

    if (awq) {
      std::vector<Mapping> maps = {{"input_layernorm", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, "self_attn.q_proj"},
                                   {"self_attn.v_proj", {"self_attn.o_proj"}, "self_attn.o_proj"},
                                   {"post_attention_layernorm", {"mlp.gate_proj", "mlp.up_proj"}, "mlp.gate_proj"},
                                   {"mlp.up_proj", {"mlp.down_proj"}, "mlp.down_proj"}};
      // Every pair's scale is searched on the layer as it is, then all are folded (AutoAWQ
      // quantizer.py: the scales_list of every group first, apply_scale after).
      struct Found {
        const Mapping* mp;
        std::vector<Work*> bal;
        std::vector<double> s;
        AwqGridPoint point;
        double loss, identity_loss;  // the search's loss of s and of s = 1 (plain RTN)
      };
      std::vector<Found> found;
      for (const Mapping& mp : maps) {
        std::vector<Work*> bal;
        for (const auto& b : mp.balance)
          if (Work* w = find_work(b)) bal.push_back(w);
        if (bal.size() != mp.balance.size()) continue;  // a balance Linear stays unquantized
        const SiteStats& st = col.sites.at(mp.site);
        const uint64_t k = st.h.width();
        // v -> o only when v's outputs are o's inputs (AutoAWQ: shapes equal; never under GQA).
        if (mp.prev == "self_attn.v_proj") {
          const model::RankLinear& v = linear_of(layer, "self_attn.v_proj");
          if (v.weight->out_features() != k || !find_work("self_attn.v_proj")) continue;
        }
        std::vector<double> x_mean(k);
        for (uint64_t ch = 0; ch < k; ++ch) x_mean[ch] = st.abs_sum[ch] / static_cast<double>(st.h.tokens());
        std::vector<const std::vector<double>*> ws;
        for (Work* w : bal) ws.push_back(&w->orig);
        const uint64_t group = bal[0]->scheme.group_size > 0 ? static_cast<uint64_t>(bal[0]->scheme.group_size) : k;
        const std::vector<double> w_mean = weight_means(ws, k, group);
        std::vector<double> gram = hmat.at(mp.site);
        for (double& v : gram) v /= 2;  // XᵀX / n
        const std::vector<double> ref = awq_inspects_block(mp.site) ? block_output(mp.site, bal, {}) : std::vector<double>{};
        Found best{&mp, bal, std::vector<double>(k, 1.0), {0.0, false}, std::numeric_limits<double>::infinity(), 0};
        for (const AwqGridPoint& pt : awq_grid()) {
          const std::vector<double> s = awq_scales(x_mean, w_mean, pt);
          // Each balance Linear as AutoAWQ scores it: RTN of W·s, divided back by s.
          std::vector<std::vector<double>> qs;
          for (Work* w : bal) {
            std::vector<double> q = w->orig;
            const uint64_t n = q.size() / k;
            for (uint64_t row = 0; row < n; ++row)
              for (uint64_t ch = 0; ch < k; ++ch) q[row * k + ch] *= s[ch];
            q = fake_quant(w->scheme, q, k, w->file, w->module);
            for (uint64_t row = 0; row < n; ++row)
              for (uint64_t ch = 0; ch < k; ++ch) q[row * k + ch] /= s[ch];
            qs.push_back(std::move(q));
          }
          double loss = 0;
          if (awq_inspects_block(mp.site)) {  // mean squared change of the block's output
            const std::vector<double> got = block_output(mp.site, bal, std::move(qs));
            for (size_t j = 0; j < got.size(); ++j) loss += (got[j] - ref[j]) * (got[j] - ref[j]);
            loss /= static_cast<double>(std::max<size_t>(got.size(), 1));
          } else {  // the balance Linear is the module: its output change, exactly, from XᵀX
            for (size_t b = 0; b < bal.size(); ++b) loss += gram_error(gram, bal[b]->orig, qs[b], k);
          }
          if (!pt.duo && pt.ratio == 0) best.identity_loss = loss;
          if (loss < best.loss) best.loss = loss, best.point = pt, best.s = s;
        }
        found.push_back(std::move(best));
      }
      std::map<std::string, std::vector<double>> site_scale;  // inputs divided by these for the clip search
      for (const Found& f : found) {
        const Mapping& mp = *f.mp;
        const std::vector<double>& best_s = f.s;
        const uint64_t k = best_s.size();
        // Fold: previous op's outputs / s, balance columns * s.
        if (mp.prev == "input_layernorm" || mp.prev == "post_attention_layernorm") {
          std::vector<double>& norm = mp.prev == "input_layernorm" ? layer.input_norm : layer.post_norm;
          const std::string name = "model.layers." + std::to_string(i) + "." + mp.prev + ".weight";
          const DType d = plan_dtype(qp, name);
          for (uint64_t ch = 0; ch < k; ++ch) norm[ch] = round_to(d, norm[ch] / best_s[ch]);
          out.tensors[name] = norm;
        } else {
          Work* p = find_work(mp.prev);
          const uint64_t pk = p->w.size() / k;
          p->out_scale = best_s;
          for (uint64_t row = 0; row < k; ++row)
            for (uint64_t ch = 0; ch < pk; ++ch) p->w[row * pk + ch] /= best_s[row];
        }
        for (Work* w : f.bal) {
          w->in_scale = best_s;
          const uint64_t n = w->w.size() / k;
          for (uint64_t row = 0; row < n; ++row)
            for (uint64_t ch = 0; ch < k; ++ch) w->w[row * k + ch] *= best_s[ch];
          LinearResult& ch = awq_choice[w->short_name];
          ch.awq_ratio = f.point.ratio, ch.awq_duo = f.point.duo;
          ch.awq_loss = f.loss, ch.awq_identity_loss = f.identity_loss;
        }
        site_scale[mp.site] = best_s;
      }
      // Clipping search on the smoothed weights and inputs (not q/k, as AutoAWQ).
      if (o.clip)
        for (Work& w : work) {
          if (w.short_name == "self_attn.q_proj" || w.short_name == "self_attn.k_proj") continue;
          const std::string site = site_of(w.short_name);
          std::vector<double> x = col.sites.at(site).sample;
          const uint64_t k = col.sites.at(site).h.width();
          if (auto it = site_scale.find(site); it != site_scale.end())
            for (uint64_t t = 0; t < x.size() / k; ++t)
              for (uint64_t ch = 0; ch < k; ++ch) x[t * k + ch] /= it->second[ch];
          awq_clip(w.scheme, w.w, k, x, w.file, w.module);
        }
    }

    // Quantize each Linear; install its dequantized weights.
    for (Work& w : work) {
      const std::vector<double>& h = hmat.at(site_of(w.short_name));
      const uint64_t k = linear_of(layer, w.short_name).weight->in_features(), n = w.orig.size() / k;
      LinearResult res;
      res.module = w.module;
      const std::vector<float> orig_f = to_float(w.orig), w_f = to_float(w.w);
      Int4Weights rtn;
      check_issue(rtn_int4(w.scheme, orig_f.data(), n, k, &rtn), w.scheme, w.file, w.module);
      res.rtn_error = output_error(h, orig_f.data(), rtn.dequantized, n, k);
      std::vector<double> effective;  // the written weights' function in the original input space
      if (awq) {
        check_issue(rtn_int4(w.scheme, w_f.data(), n, k, &res.q), w.scheme, w.file, w.module);
        effective = res.q.dequantized;
        for (uint64_t r = 0; r < n; ++r)
          for (uint64_t ch = 0; ch < k; ++ch) {
            double& e = effective[r * k + ch];
            if (!w.in_scale.empty()) e /= w.in_scale[ch];
            if (!w.out_scale.empty()) e *= w.out_scale[r];
          }
        if (auto it = awq_choice.find(w.short_name); it != awq_choice.end()) {
          const LinearResult& ch = it->second;
          res.awq_ratio = ch.awq_ratio, res.awq_duo = ch.awq_duo;
          res.awq_loss = ch.awq_loss, res.awq_identity_loss = ch.awq_identity_loss;
        }
      } else {
        check_issue(gptq_int4(w.scheme, orig_f.data(), n, k, h, {o.damp, o.act_order, 128}, &res.q, &res.gptq),
                    w.scheme, w.file, w.module);
        effective = res.q.dequantized;
      }
      res.error = output_error(h, orig_f.data(), effective, n, k);
      res.relative_error = relative_error(w.orig, effective);
      model::RankLinear& rl = linear_of(layer, w.short_name);
      rl.weight = std::make_shared<ValuesLinear>(rl.weight, res.q.dequantized,
                                                 std::string("int4 ") + calib_method_name(o.method));
      out.linears.push_back(std::move(res));
    }
    // GPTQ: the next layer's inputs come from this layer with its quantized weights.
    if (!awq)
      for (uint64_t s = 0; s < calib.sequences; ++s) fwd.layer(i, hidden[s], L, nullptr);
    if (layer_done) layer_done(i + 1, c.layers);
  }
  for (const auto& [module, done] : reached)
    if (!done)
      fail(Errc::kUnsupported, src, module + ".weight",
           "calibrated quantization covers the decoder layers' q/k/v/o/gate/up/down Linears only (--ignore this module)");
  return out;
}

// --- output ----------------------------------------------------------------------------------

namespace {

// A producer of bytes computed before execution.
class BytesProducer final : public Producer {
 public:
  BytesProducer(std::vector<uint8_t> bytes, std::string what, std::string tensor)
      : bytes_(std::move(bytes)), what_(std::move(what)), tensor_(std::move(tensor)) {}
  uint64_t nbytes() const override { return bytes_.size(); }
  void produce(const SourceReader&, uint64_t begin, uint64_t n, uint8_t* out) const override {
    std::memcpy(out, bytes_.data() + begin, n);
  }
  ojson describe() const override { return {{"op", what_}, {"tensor", tensor_}}; }

 private:
  std::vector<uint8_t> bytes_;
  std::string what_, tensor_;
};

template <class T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace

std::vector<uint8_t> int4_array(const Int4Weights& q, quant::PartRole role) {
  const ops::Int4Geometry& geo = q.geo;
  const ops::Int4Shapes sh = ops::int4_shapes(q.scheme, geo.n, geo.k);
  auto numel = [](const std::vector<uint64_t>& s) {
    uint64_t v = 1;
    for (uint64_t d : s) v *= d;
    return v;
  };
  const ops::Int4ParamsView all{q.params.data(), geo.groups, 0, geo.n, 0, geo.groups};
  switch (role) {
    case quant::PartRole::kCodes: {
      const uint64_t W = (geo.k + 7) / 8;
      const std::vector<uint32_t> words = pack_codes_k(q.codes, geo.n, geo.k);
      if (q.scheme.format == ops::Int4Format::kCompressedTensors) return as_bytes(words);
      std::vector<uint32_t> out(numel(sh.weights));
      if (q.scheme.format == ops::Int4Format::kGptq) ops::int4_words_to_gptq(words.data(), W, geo.n, W, out.data(), geo.n);
      else ops::int4_words_to_awq(words.data(), W, geo.n, W, out.data(), geo.n / 8);
      return as_bytes(out);
    }
    case quant::PartRole::kScale: {
      std::vector<uint8_t> out(numel(sh.scales) * dtype_bits(q.scheme.scale_dtype) / 8);
      ops::int4_store_scales(q.scheme, geo, all, out.data());
      return out;
    }
    case quant::PartRole::kZero: {
      std::vector<uint32_t> out(numel(sh.zeros));
      ops::int4_store_zeros(q.scheme, geo, all, out.data());
      return as_bytes(out);
    }
    case quant::PartRole::kGroupIndex: {
      std::vector<int32_t> out(geo.k);
      ops::int4_store_g_idx(geo, 0, geo.k, out.data());
      return as_bytes(out);
    }
    case quant::PartRole::kShape:
      return as_bytes(std::vector<int64_t>{static_cast<int64_t>(geo.n), static_cast<int64_t>(geo.k)});
    case quant::PartRole::kInputScale: break;
  }
  throw std::logic_error("int4 has no input scales");
}

namespace {

std::vector<uint8_t> encode_values(DType d, const std::vector<double>& v) {
  std::vector<uint8_t> out(v.size() * dtype_bits(d) / 8);
  for (size_t i = 0; i < v.size(); ++i) {
    if (d == DType::BF16 || d == DType::F16) {
      const uint16_t h = d == DType::BF16 ? ops::f64_to_bf16(v[i]) : ops::f64_to_f16(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    } else if (d == DType::F32) {
      const float f = static_cast<float>(v[i]);
      std::memcpy(&out[i * 4], &f, 4);
    } else {
      throw std::logic_error("encode_values: norm dtype");
    }
  }
  return out;
}

OutputTensor* plan_tensor(QuantizePlan& qp, const std::string& name) {
  for (auto& f : qp.plan.files)
    for (auto& t : f.tensors)
      if (t.name == name) return &t;
  return nullptr;
}

}  // namespace

void apply_calibrated(QuantizePlan& qp, const Calibrated& c) {
  std::map<std::string, const LinearResult*> by_module;
  for (const auto& l : c.linears) by_module[l.module] = &l;
  const std::string what = std::string("int4 ") + calib_method_name(c.method);
  for (const auto& q : qp.int4) {
    const std::string module = q->tensor().substr(0, q->tensor().size() - 7);
    const LinearResult* r = by_module.at(module);
    for (const auto& part : qp.scheme.linear_parts(q->geometry().n, q->geometry().k, q->view().dtype)) {
      OutputTensor* t = plan_tensor(qp, module + "." + part.suffix);
      if (!t) throw std::logic_error("apply_calibrated: planned part missing: " + module + "." + part.suffix);
      t->producer = std::make_shared<BytesProducer>(int4_array(r->q, part.role), what, t->name);
    }
  }
  for (const auto& [name, values] : c.tensors) {
    OutputTensor* t = plan_tensor(qp, name);
    if (!t) throw std::logic_error("apply_calibrated: smoothed tensor missing: " + name);
    t->producer = std::make_shared<BytesProducer>(encode_values(t->dtype, values), what + " smoothed", name);
  }
  qp.plan.notes["calibration"] = {{"method", calib_method_name(c.method)}, {"samples", c.samples}, {"seq_len", c.seq_len}};
}

void install_calibrated(model::Model& m, const Calibrated& c) {
  for (const auto& l : c.linears) {
    // "model.layers.<i>.<short>"
    const std::string p = "model.layers.";
    const size_t dot = l.module.find('.', p.size());
    const uint64_t i = std::stoull(l.module.substr(p.size(), dot - p.size()));
    model::RankLinear& rl = linear_of(m.mutable_layer(i), l.module.substr(dot + 1));
    rl.weight = std::make_shared<ValuesLinear>(rl.weight, l.q.dequantized, std::string("int4 ") + calib_method_name(c.method));
  }
  for (const auto& [name, values] : c.tensors) {
    const std::string p = "model.layers.";
    const size_t dot = name.find('.', p.size());
    model::Layer& L = m.mutable_layer(std::stoull(name.substr(p.size(), dot - p.size())));
    (name.find("input_layernorm") != std::string::npos ? L.input_norm : L.post_norm) = values;
  }
}

ojson calibrated_report(const QuantizePlan& qp, const Calibrated& c) {
  ojson r = quantize_report(qp);
  ojson ts = ojson::array();
  uint64_t better = 0, fallbacks = 0;
  for (const auto& l : c.linears) {
    ojson j = {{"tensor", l.module + ".weight"},
               {"shape", {l.q.geo.n, l.q.geo.k}},
               {"relative_error", l.relative_error},
               {"output_error", l.error},
               {"rtn_output_error", l.rtn_error}};
    if (c.method == CalibMethod::kGptq) {
      j["damp"] = l.gptq.damp;
      j["dead_inputs"] = l.gptq.dead_inputs;
      j["rtn_fallback"] = l.gptq.rtn_fallback;
      fallbacks += l.gptq.rtn_fallback;
    } else {
      j["awq_ratio"] = l.awq_ratio;
      j["awq_duo"] = l.awq_duo;
      j["awq_loss"] = l.awq_loss;
      j["awq_identity_loss"] = l.awq_identity_loss;
    }
    better += l.error < l.rtn_error;
    ts.push_back(j);
  }
  r["tensors"] = ts;
  r["calibration"] = {{"method", calib_method_name(c.method)},
                      {"samples", c.samples},
                      {"seq_len", c.seq_len},
                      {"tokens", c.samples * c.seq_len},
                      {"linears_better_than_rtn", better},
                      {"linears", c.linears.size()},
                      {"rtn_fallbacks", fallbacks}};
  return r;
}

std::string calibrated_summary_line(const QuantizePlan& qp, const Calibrated& c) {
  double err = 0, rtn = 0;
  uint64_t better = 0, fallbacks = 0;
  for (const auto& l : c.linears) {
    err += l.error, rtn += l.rtn_error, better += l.error < l.rtn_error;
    fallbacks += l.gptq.rtn_fallback;
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "%.4g vs RTN %.4g", err, rtn);
  std::string s = count_of(c.linears.size(), "weight") + " quantized (" +
                  qp.plan.notes["quantization"].get<std::string>() + ", " + calib_method_name(c.method) + " on " +
                  std::to_string(c.samples) + " x " + std::to_string(c.seq_len) + " tokens), " +
                  format_bytes(qp.bytes_before) + " -> " + format_bytes(qp.plan.tensor_bytes()) +
                  "; summed output error " + buf + ", better than RTN on " + std::to_string(better) + "/" +
                  std::to_string(c.linears.size());
  if (fallbacks) s += "; " + count_of(fallbacks, "Linear") + " fell back to RTN (Cholesky failed)";
  return s;
}

}  // namespace ckpt::calib
