#include "model/cpu_forward.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace ckpt::model {

std::string short_module_name(const std::string& module) {
  const std::string p = "model.layers.";
  if (module.rfind(p, 0) != 0) return module;
  const size_t dot = module.find('.', p.size());
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

namespace {

// y = W x (+ bias) for `rows` rows of x.
std::vector<double> apply(const Workers& w, const RankLinear& l, const std::vector<double>& x, uint64_t rows) {
  const uint64_t n = l.weight->out_features();
  std::vector<double> y(rows * n);
  linear_forward(*l.weight, x.data(), rows, y.data(), w);
  if (!l.bias.empty())
    for (uint64_t t = 0; t < rows; ++t)
      for (uint64_t j = 0; j < n; ++j) y[t * n + j] += l.bias[j];
  return y;
}

std::vector<double> apply(const Workers& workers, const LinearWeights& w, const std::vector<double>& x, uint64_t rows) {
  std::vector<double> y(rows * w.out_features());
  linear_forward(w, x.data(), rows, y.data(), workers);
  return y;
}

void add_into(std::vector<double>& acc, const std::vector<double>& x) {
  for (size_t i = 0; i < acc.size(); ++i) acc[i] += x[i];
}

void add_bias(std::vector<double>& y, const std::vector<double>& bias, uint64_t rows) {
  if (bias.empty()) return;
  const uint64_t n = bias.size();
  for (uint64_t t = 0; t < rows; ++t)
    for (uint64_t j = 0; j < n; ++j) y[t * n + j] += bias[j];
}

// Columns [col, col + width) of a [rows][stride] matrix.
std::vector<double> columns(const std::vector<double>& m, uint64_t rows, uint64_t stride, uint64_t col, uint64_t width) {
  std::vector<double> out(rows * width);
  for (uint64_t t = 0; t < rows; ++t)
    std::copy_n(m.begin() + t * stride + col, width, out.begin() + t * width);
  return out;
}

// Places a rank's output columns ([rows][sum of range lengths]) at their logical columns.
void scatter(const std::vector<double>& local, uint64_t rows, const std::vector<AxisRange>& ranges,
             std::vector<double>& logical, uint64_t width) {
  uint64_t local_width = 0;
  for (const auto& r : ranges) local_width += r.length;
  for (uint64_t t = 0; t < rows; ++t) {
    uint64_t c = 0;
    for (const auto& r : ranges) {
      std::copy_n(local.begin() + t * local_width + c, r.length, logical.begin() + t * width + r.begin);
      c += r.length;
    }
  }
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

std::string short_name(const std::string& module) { return short_module_name(module); }

// Gathers the rank outputs of one column-parallel Linear into its logical output and shows it.
void observe_gathered(ActivationObserver* obs, uint64_t layer, const std::vector<const RankLinear*>& lins,
                      const std::vector<std::vector<double>>& outs, uint64_t rows, uint64_t width) {
  if (!obs) return;
  std::vector<double> logical(rows * width);
  for (size_t r = 0; r < lins.size(); ++r) scatter(outs[r], rows, lins[r]->rows, logical, width);
  obs->on(layer, short_name(lins[0]->module), logical.data(), rows, width);
}

// The gated MLP of one rank on `rows` rows of x: its partial down_proj output (no down bias).
// Observed gate/up outputs are returned through gate_out / up_out when asked for.
std::vector<double> rank_mlp(const Workers& w, const RankMlp& m, const std::vector<double>& x, uint64_t rows,
                             std::vector<double>* gate_out, std::vector<double>* up_out,
                             std::vector<double>* down_in = nullptr) {
  const uint64_t n = m.local_intermediate;
  std::vector<double> g, u;
  if (m.gate_up.present()) {
    std::vector<double> gu = apply(w, m.gate_up, x, rows);
    g = columns(gu, rows, 2 * n, 0, n);
    u = columns(gu, rows, 2 * n, n, n);
    if (gate_out) *gate_out = std::move(gu);
  } else {
    g = apply(w, m.gate, x, rows);
    u = apply(w, m.up, x, rows);
    if (gate_out) *gate_out = g;
    if (up_out) *up_out = u;
  }
  std::vector<double> a(rows * n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = silu(g[i]) * u[i];
  if (down_in) *down_in = a;
  return apply(w, m.down, a, rows);
}

}  // namespace

void rms_norm(const double* x, uint64_t rows, uint64_t width, const std::vector<double>& weight, double eps, double* out) {
  for (uint64_t t = 0; t < rows; ++t) {
    const double* xr = x + t * width;
    double ss = 0;
    for (uint64_t j = 0; j < width; ++j) ss += xr[j] * xr[j];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(width) + eps);
    for (uint64_t j = 0; j < width; ++j) out[t * width + j] = weight[j] * (xr[j] * inv);
  }
}

uint64_t argmax(const double* v, uint64_t n) {
  uint64_t best = 0;
  for (uint64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

std::vector<ExpertRows> route(const std::vector<double>& logits, uint64_t rows, const MoeConfig& moe) {
  const uint64_t E = moe.experts;
  std::vector<ExpertRows> out(E);
  std::vector<double> p(E);
  std::vector<uint64_t> order(E);
  for (uint64_t t = 0; t < rows; ++t) {
    const double* l = &logits[t * E];
    const double mx = *std::max_element(l, l + E);
    double sum = 0;
    for (uint64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(l[e] - mx));
    for (double& v : p) v /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](uint64_t a, uint64_t b) { return p[a] > p[b]; });
    double top = 0;
    for (uint64_t j = 0; j < moe.top_k; ++j) top += p[order[j]];
    for (uint64_t j = 0; j < moe.top_k; ++j) {
      out[order[j]].rows.push_back(t);
      out[order[j]].weights.push_back(moe.normalize_top_k ? p[order[j]] / top : p[order[j]]);
    }
  }
  return out;
}

CpuForward::CpuForward(const Model& model, uint64_t batch, uint64_t capacity, Workers workers)
    : m_(model), c_(model.config()), batch_(batch), capacity_(capacity), workers_(workers) {
  if (batch == 0 || capacity == 0) throw std::logic_error("CpuForward: empty batch or capacity");
  rope_ = rope_table(c_.rope, capacity);
  keys_.resize(c_.layers);
  values_.resize(c_.layers);
  for (uint64_t i = 0; i < c_.layers; ++i)
    for (const auto& a : m_.layers()[i].attention) {
      const uint64_t n = batch * capacity * a.kv_heads.size() * c_.head_dim;
      keys_[i].emplace_back(n);
      values_[i].emplace_back(n);
    }
}

uint64_t CpuForward::kv_cache_bytes() const {
  uint64_t n = 0;
  for (const auto& l : keys_)
    for (const auto& r : l) n += 2 * r.size() * sizeof(double);
  return n;
}

std::vector<double> CpuForward::embed(const std::vector<int64_t>& ids) const {
  const uint64_t h = c_.hidden;
  std::vector<double> out(ids.size() * h, 0.0);
  for (size_t t = 0; t < ids.size(); ++t) {
    const int64_t id = ids[t];
    if (id < 0 || static_cast<uint64_t>(id) >= c_.vocab)
      fail(Errc::kInvalidArgument, "", "", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                               std::to_string(c_.vocab) + ")");
    // Vocab-parallel: the one rank whose rows hold the id contributes its row, the others zero.
    for (const auto& slice : m_.embed()) {
      const uint64_t u = static_cast<uint64_t>(id);
      if (u >= slice.rows.begin && u < slice.rows.begin + slice.rows.length)
        slice.table->dequantize_rows(u - slice.rows.begin, 1, out.data() + t * h);
    }
  }
  return out;
}

void CpuForward::attention(uint64_t i, const std::vector<double>& x, uint64_t tokens, std::vector<double>& out,
                           ActivationObserver* obs) {
  const Layer& L = m_.layers()[i];
  const uint64_t rows = batch_ * tokens, hd = c_.head_dim, group = c_.heads / c_.kv_heads;
  const uint64_t window = c_.sliding_window[i];
  const double scale = c_.attention_scale();
  out.assign(rows * c_.hidden, 0.0);
  std::vector<std::vector<double>> q_obs, k_obs, v_obs, qkv_obs;
  for (size_t r = 0; r < L.attention.size(); ++r) {
    const RankAttention& a = L.attention[r];
    const uint64_t nq = a.q_heads.size(), nkv = a.kv_heads.size();
    std::vector<double> q, k, v;
    if (obs) obs->on_input(i, "self_attn.q_proj", x.data(), rows, c_.hidden);
    if (a.qkv.present()) {
      std::vector<double> qkv = apply(workers_, a.qkv, x, rows);
      const uint64_t w = (nq + 2 * nkv) * hd;
      q = columns(qkv, rows, w, 0, nq * hd);
      k = columns(qkv, rows, w, nq * hd, nkv * hd);
      v = columns(qkv, rows, w, (nq + nkv) * hd, nkv * hd);
      if (obs) qkv_obs.push_back(std::move(qkv));
    } else {
      q = apply(workers_, a.q, x, rows);
      k = apply(workers_, a.k, x, rows);
      v = apply(workers_, a.v, x, rows);
      if (obs) {
        q_obs.push_back(q);
        k_obs.push_back(k);
        v_obs.push_back(v);
      }
    }
    // Qwen3: RMSNorm over each head's head_dim values, before the rotation.
    if (c_.qk_norm) {
      rms_norm(q.data(), rows * nq, hd, L.q_norm, c_.rms_eps, q.data());
      rms_norm(k.data(), rows * nkv, hd, L.k_norm, c_.rms_eps, k.data());
    }
    std::vector<double>& K = keys_[i][r];
    std::vector<double>& V = values_[i][r];
    for (uint64_t b = 0; b < batch_; ++b)
      for (uint64_t t = 0; t < tokens; ++t) {
        const uint64_t row = b * tokens + t, pos = length_ + t;
        for (uint64_t h = 0; h < nq; ++h) apply_rope(&q[(row * nq + h) * hd], pos, rope_);
        for (uint64_t h = 0; h < nkv; ++h) {
          apply_rope(&k[(row * nkv + h) * hd], pos, rope_);
          const uint64_t slot = ((b * capacity_ + pos) * nkv + h) * hd;
          std::copy_n(&k[(row * nkv + h) * hd], hd, &K[slot]);
          std::copy_n(&v[(row * nkv + h) * hd], hd, &V[slot]);
        }
      }
    // softmax(q k^T * scale + causal/window mask) v, per sequence and query head.
    std::vector<double> ctx(rows * nq * hd, 0.0);
    const bool parallel = batch_ * tokens * nq * (length_ + tokens) * hd >= (1u << 20);
    auto attend = [&](size_t row) {
        const uint64_t b = row / tokens, t = row % tokens, pos = length_ + t;
        const uint64_t first = window && pos + 1 > window ? pos + 1 - window : 0;
        std::vector<double> p(pos + 1 - first);
        for (uint64_t h = 0; h < nq; ++h) {
          const uint64_t kvh = a.q_heads[h] / group - a.kv_heads.front();
          const double* qh = &q[(row * nq + h) * hd];
          double mx = -INFINITY;
          for (uint64_t j = first; j <= pos; ++j) {
            const double* kj = &K[((b * capacity_ + j) * nkv + kvh) * hd];
            double s = 0;
            for (uint64_t d = 0; d < hd; ++d) s += qh[d] * kj[d];
            p[j - first] = s * scale;
            mx = std::max(mx, p[j - first]);
          }
          double sum = 0;
          for (double& e : p) sum += (e = std::exp(e - mx));
          double* o = &ctx[(row * nq + h) * hd];
          for (uint64_t j = first; j <= pos; ++j) {
            const double w = p[j - first] / sum;
            const double* vj = &V[((b * capacity_ + j) * nkv + kvh) * hd];
            for (uint64_t d = 0; d < hd; ++d) o[d] += w * vj[d];
          }
        }
      };
    if (parallel) parallel_for(batch_ * tokens, workers_, attend);
    else
      for (uint64_t row = 0; row < batch_ * tokens; ++row) attend(row);
    if (obs) obs->on_input(i, "self_attn.o_proj", ctx.data(), rows, nq * hd);
    add_into(out, apply(workers_, a.o, ctx, rows));  // row-parallel: partial sums, reduced in rank order
  }
  add_bias(out, L.o_bias, rows);
  if (obs) {
    std::vector<const RankLinear*> lins;
    if (!qkv_obs.empty()) {
      for (const auto& a : L.attention) lins.push_back(&a.qkv);
      observe_gathered(obs, i, lins, qkv_obs, rows, c_.q_rows() + 2 * c_.kv_rows());
    } else {
      for (auto [which, outs, width] : {std::tuple{0, &q_obs, c_.q_rows()}, std::tuple{1, &k_obs, c_.kv_rows()},
                                        std::tuple{2, &v_obs, c_.kv_rows()}}) {
        lins.clear();
        for (const auto& a : L.attention) lins.push_back(which == 0 ? &a.q : which == 1 ? &a.k : &a.v);
        observe_gathered(obs, i, lins, *outs, rows, width);
      }
    }
    obs->on(i, "self_attn.o_proj", out.data(), rows, c_.hidden);
  }
}

void CpuForward::mlp(uint64_t i, const std::vector<double>& x, uint64_t rows, std::vector<double>& out,
                     ActivationObserver* obs) {
  const Layer& L = m_.layers()[i];
  out.assign(rows * c_.hidden, 0.0);
  std::vector<std::vector<double>> g_obs(L.mlp.size()), u_obs(L.mlp.size());
  for (size_t r = 0; r < L.mlp.size(); ++r) {
    std::vector<double> down_in;
    if (obs) obs->on_input(i, "mlp.gate_proj", x.data(), rows, c_.hidden);
    add_into(out, rank_mlp(workers_, L.mlp[r], x, rows, obs ? &g_obs[r] : nullptr, obs ? &u_obs[r] : nullptr,
                           obs ? &down_in : nullptr));
    if (obs) obs->on_input(i, "mlp.down_proj", down_in.data(), rows, L.mlp[r].local_intermediate);
  }
  add_bias(out, L.down_bias, rows);
  if (!obs) return;
  std::vector<const RankLinear*> lins;
  if (c_.fused_gate_up) {
    for (const auto& m : L.mlp) lins.push_back(&m.gate_up);
    observe_gathered(obs, i, lins, g_obs, rows, 2 * c_.intermediate);
  } else {
    for (const auto& m : L.mlp) lins.push_back(&m.gate);
    observe_gathered(obs, i, lins, g_obs, rows, c_.intermediate);
    lins.clear();
    for (const auto& m : L.mlp) lins.push_back(&m.up);
    observe_gathered(obs, i, lins, u_obs, rows, c_.intermediate);
  }
  obs->on(i, short_name(L.mlp[0].down.module), out.data(), rows, c_.hidden);
}

void CpuForward::moe(uint64_t i, const std::vector<double>& x, uint64_t rows, std::vector<double>& out,
                     ActivationObserver* obs) {
  const Layer& L = m_.layers()[i];
  const MoeConfig& moe = *c_.moe;
  const uint64_t E = moe.experts, H = c_.hidden;
  // Router: softmax over all experts, the top-k probabilities, renormalised when configured
  // (MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock.forward).
  std::vector<double> logits = apply(workers_, *L.router, x, rows);
  if (obs) obs->on(i, short_name(L.router_module), logits.data(), rows, E);
  const std::vector<ExpertRows> routed_rows = route(logits, rows, moe);
  // Each expert runs on the rows routed to it: every rank's share (a slice of every expert, or
  // whole experts under --ep) summed in rank order, then weighted into the rows, expert by expert.
  const std::string block = short_name(L.router_module).substr(0, short_name(L.router_module).size() - 4);  // "mlp."
  std::vector<double> routed(rows * H, 0.0);
  for (uint64_t e = 0; e < E; ++e) {
    const std::vector<uint64_t>& sel = routed_rows[e].rows;
    const std::vector<double>& weight = routed_rows[e].weights;
    if (sel.empty()) continue;
    std::vector<double> xs(sel.size() * H), y(sel.size() * H, 0.0);
    for (size_t s = 0; s < sel.size(); ++s) std::copy_n(&x[sel[s] * H], H, &xs[s * H]);
    for (const RankMoe& rm : L.experts)
      if (rm.experts[e].present()) add_into(y, rank_mlp(workers_, rm.experts[e], xs, sel.size(), nullptr, nullptr));
    // The expert's own output on its rows (unweighted), for locating a broken expert.
    if (obs) obs->on(i, block + "experts." + std::to_string(e), y.data(), sel.size(), H);
    for (size_t s = 0; s < sel.size(); ++s)
      for (uint64_t j = 0; j < H; ++j) routed[sel[s] * H + j] += weight[s] * y[s * H + j];
  }
  out = routed;
  if (obs) obs->on(i, block + "experts", routed.data(), rows, H);
  if (L.shared_gate) {
    // Qwen2MoeSparseMoeBlock: + sigmoid(shared_expert_gate(x)) * shared_expert(x).
    std::vector<double> shared(rows * H, 0.0);
    for (const RankMoe& rm : L.experts) add_into(shared, rank_mlp(workers_, rm.shared, x, rows, nullptr, nullptr));
    std::vector<double> gate = apply(workers_, *L.shared_gate, x, rows);
    for (uint64_t t = 0; t < rows; ++t) {
      const double s = 1.0 / (1.0 + std::exp(-gate[t]));
      for (uint64_t j = 0; j < H; ++j) shared[t * H + j] *= s;
    }
    if (obs) obs->on(i, block + "shared_expert", shared.data(), rows, H);
    add_into(out, shared);
  }
}

void CpuForward::layer(uint64_t i, std::vector<double>& hidden, uint64_t tokens, ActivationObserver* obs) {
  if (length_ + tokens > capacity_)
    fail(Errc::kInvalidArgument, "", "", "sequence of " + std::to_string(length_ + tokens) +
                                             " tokens exceeds the KV cache of " + std::to_string(capacity_));
  const Layer& L = m_.layers()[i];
  const uint64_t rows = batch_ * tokens, H = c_.hidden;
  std::vector<double> x(rows * H), y;
  rms_norm(hidden.data(), rows, H, L.input_norm, c_.rms_eps, x.data());
  attention(i, x, tokens, y, obs);
  add_into(hidden, y);
  rms_norm(hidden.data(), rows, H, L.post_norm, c_.rms_eps, x.data());
  if (L.moe) moe(i, x, rows, y, obs);
  else mlp(i, x, rows, y, obs);
  add_into(hidden, y);
  if (obs) obs->on(i, "output", hidden.data(), rows, H);
}

void CpuForward::commit(uint64_t tokens) { length_ += tokens; }

std::vector<double> CpuForward::logits(const std::vector<double>& hidden) const {
  const uint64_t H = c_.hidden, V = c_.vocab;
  const uint64_t rows = hidden.size() / H;
  std::vector<double> x(rows * H);
  rms_norm(hidden.data(), rows, H, m_.final_norm(), c_.rms_eps, x.data());
  std::vector<double> out(rows * V);
  // Each rank's lm_head rows; its padding rows (past the real vocab) are dropped.
  for (const VocabSlice& s : m_.lm_head()) {
    std::vector<double> y = apply(workers_, *s.table, x, rows);
    const uint64_t n = s.table->out_features();
    for (uint64_t t = 0; t < rows; ++t)
      std::copy_n(&y[t * n], s.rows.length, &out[t * V + s.rows.begin]);
  }
  return out;
}

std::vector<double> CpuForward::forward(const std::vector<int64_t>& ids, uint64_t tokens, ActivationObserver* obs) {
  if (ids.size() != batch_ * tokens) throw std::logic_error("CpuForward::forward: ids are not batch x tokens");
  std::vector<double> h = embed(ids);
  for (uint64_t i = 0; i < c_.layers; ++i) layer(i, h, tokens, obs);
  commit(tokens);
  return logits(h);
}

}  // namespace ckpt::model
