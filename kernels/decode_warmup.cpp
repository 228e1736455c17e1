#include "decode_warmup.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "core/sizes.h"
#include "cuda_check.h"
#include "model/compare.h"
#include "model/model_weights.h"
#include "runtime/gpu_forward.h"
#include "runtime/linear_kernels.h"

namespace ckpt::cuda {

namespace {

constexpr uint64_t kKvContext = 2048;  // tokens per sequence the KV cache holds (at most)
constexpr int kReplays = 5;            // timed replays of each graph
constexpr uint64_t kIdSeed = 5;        // the warm-up's token ids (model::seeded_token_ids)

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

uint64_t nonfinite(const std::vector<double>& v) {
  return static_cast<uint64_t>(std::count_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }));
}

// Where non-finite logits come from: the first Linear (layer order, then the vocab tables) whose
// dequantized weight holds a NaN or Inf, by the CPU reference's dequantization. Empty: none (the
// activations overflowed instead).
std::string first_nonfinite_weight(const model::Model& m) {
  auto bad = [](const model::LinearWeights& w) {
    const uint64_t k = w.in_features(), rows = std::max<uint64_t>(1, (uint64_t{1} << 20) / std::max<uint64_t>(k, 1));
    std::vector<double> buf;
    for (uint64_t r = 0; r < w.out_features(); r += rows) {
      const uint64_t count = std::min(rows, w.out_features() - r);
      buf.resize(count * k);
      w.dequantize_rows(r, count, buf.data());
      for (double x : buf)
        if (!std::isfinite(x)) return true;
    }
    return false;
  };
  for (uint64_t i = 0; i < m.layers().size(); ++i) {
    const model::Layer& L = m.layers()[i];
    std::vector<const model::RankLinear*> ls;
    for (const auto& a : L.attention)
      for (const model::RankLinear* l : {&a.q, &a.k, &a.v, &a.qkv, &a.o}) ls.push_back(l);
    auto add_mlp = [&](const model::RankMlp& x) {
      for (const model::RankLinear* l : {&x.gate, &x.up, &x.gate_up, &x.down}) ls.push_back(l);
    };
    for (const auto& x : L.mlp) add_mlp(x);
    for (const auto& e : L.experts) {
      for (const auto& x : e.experts) add_mlp(x);
      add_mlp(e.shared);
    }
    for (const model::RankLinear* l : ls)
      if (l->present() && bad(*l->weight)) return l->module + ".weight";
    if (L.router && bad(*L.router)) return L.router_module + ".weight";
  }
  for (const auto& s : m.embed())
    if (bad(*s.table)) return "model.embed_tokens.weight";
  for (const auto& s : m.lm_head())
    if (bad(*s.table)) return "lm_head.weight";
  return "";
}

}  // namespace

struct DecodeWarmup::Impl {
  const validate::Layout& layout;
  std::vector<int> batches;  // ascending, distinct
  std::unique_ptr<model::Model> model;
  std::unique_ptr<GpuForward> gpu;
  std::string unsupported;
  std::map<int, std::vector<int64_t>> ids;             // per batch size: one id per sequence
  std::map<int, std::vector<double>> eager_logits;      // per batch size, at position 0
  ResidentTensors* resident;

  Impl(const validate::Layout& l, std::vector<int> b, ResidentTensors* r) : layout(l), resident(r) {
    std::set<int> uniq(b.begin(), b.end());
    batches.assign(uniq.begin(), uniq.end());
  }
};

DecodeWarmup::DecodeWarmup(const validate::Layout& layout, std::vector<int> batch_sizes, ResidentTensors* resident)
    : impl_(std::make_unique<Impl>(layout, std::move(batch_sizes), resident)) {}
DecodeWarmup::~DecodeWarmup() = default;
const std::string& DecodeWarmup::unsupported() const { return impl_->unsupported; }
bool DecodeWarmup::ready() const { return impl_->gpu != nullptr; }

void DecodeWarmup::allocate(validate::PhaseScope& scope) {
  Impl& m = *impl_;
  auto t = std::chrono::steady_clock::now();
  try {
    m.model = model::Model::load(m.layout);
  } catch (const Error& e) {
    if (e.code() != Errc::kUnsupported) throw;
    // Said plainly, and nothing run in its place (issue 15: never approximated).
    m.unsupported = e.rule() + (e.file().empty() ? "" : " (" + e.file() + (e.tensor().empty() ? "" : ", " + e.tensor()) + ")");
    scope.phase().status = validate::PhaseStatus::kSkipped;
    scope.phase().summary = "the runtime cannot run this model: " + m.unsupported +
                            "; no decode warm-up and no CUDA graphs ran (the GPU proved load and integrity only)";
    scope.phase().details["runtime_unsupported"] = m.unsupported;
    return;
  }
  const double describe_s = seconds_since(t);
  const model::ModelConfig& c = m.model->config();
  const uint64_t max_batch = static_cast<uint64_t>(m.batches.back());
  // What the runtime holds on this one GPU: every rank's weights (about their file bytes), the
  // float32 GEMM scratch of steps past kSkinnyMaxRows rows (the largest weight as float32) and the
  // KV cache, whose tokens are cut to what fits, as a serving engine sizes its cache from the free
  // memory. A model whose weights alone do not fit is said so, not run (the ranks of a parallel
  // output run in turn on one GPU here).
  uint64_t weights = 0, largest = 0;
  for (const auto& target : m.layout.targets) {
    for (const auto& f : target->ck.files) weights += f.size;
    for (const auto& x : target->ck.tensors)
      if (x.shape().size() == 2) largest = std::max(largest, x.shape()[0] * x.shape()[1]);
  }
  const uint64_t scratch = max_batch > kSkinnyMaxRows ? largest * sizeof(float) : 0;
  const uint64_t kv_per_token = c.layers * 2 * std::max(c.kv_heads, m.model->tp()) * c.head_dim * sizeof(float) * max_batch;
  const uint64_t least = kReplays + 2;
  // The load's device copies stay while the runtime copies from them where the GPU holds both
  // (then the KV cache is sized with them counted as used: a smaller cache than afterwards, never
  // one that does not fit); else they go first and every weight comes from the host.
  size_t free_before = 0, total = 0;
  CKPT_CUDA(cudaMemGetInfo(&free_before, &total));
  const bool reuse = m.resident && m.resident->held_bytes() > 0 &&
                     weights + scratch + least * kv_per_token <= free_before / 100 * 90;
  if (m.resident && !reuse) {
    m.resident->release();
    CKPT_CUDA(cudaMemGetInfo(&free_before, &total));
  }
  const uint64_t usable = free_before / 100 * 90;  // room for cuBLAS, graphs and the allocator
  uint64_t capacity = std::min(kKvContext, c.max_position ? c.max_position : kKvContext);
  if (weights + scratch + least * kv_per_token > usable) {
    m.unsupported = "the model's " + format_bytes(weights) + " of weights, " + format_bytes(scratch) +
                    " of GEMM scratch and a KV cache of " + std::to_string(least) + " tokens do not fit the " +
                    format_bytes(usable) + " usable on this GPU (the runtime runs every rank on one GPU)";
    scope.phase().status = validate::PhaseStatus::kSkipped;
    scope.phase().summary = "the runtime cannot run this model here: " + m.unsupported + "; no decode warm-up and no CUDA graphs ran";
    scope.phase().details["runtime_unsupported"] = m.unsupported;
    return;
  }
  capacity = std::max(least, std::min(capacity, (usable - weights - scratch) / kv_per_token));
  t = std::chrono::steady_clock::now();
  m.gpu = std::make_unique<GpuForward>(*m.model, max_batch, capacity, reuse ? m.resident : nullptr);
  const double upload_s = seconds_since(t);
  const uint64_t reused = reuse ? m.resident->reused_bytes() : 0;
  if (m.resident) m.resident->release();
  t = std::chrono::steady_clock::now();
  m.gpu->prepare_decode();
  const double workspace_s = seconds_since(t);
  size_t free_b = 0, total_b = 0;
  CKPT_CUDA(cudaMemGetInfo(&free_b, &total_b));
  const uint64_t kv = m.gpu->kv_cache_bytes(), w = m.gpu->weight_bytes(), ws = m.gpu->workspace_bytes();
  const std::string par = m.model->parallelism();
  scope.phase().summary =
      format_bytes(w) + " of weights in device forms (" + m.model->formats() + (par.empty() ? "" : "; " + par + ", ranks in turn") +
      fmt(") uploaded in %.2f s (", upload_s) + format_bytes(reused) +
      " of them copied on the GPU from the load's verified copy); KV cache " + format_bytes(kv) + " (" + std::to_string(c.layers) +
      " layers x K,V x batch " + std::to_string(max_batch) + " x " + std::to_string(capacity) +
      " tokens x KV heads x head dim, float32); workspace " + format_bytes(ws) + "; " + format_bytes(free_b) + " free";
  auto& d = scope.phase().details;
  d["weight_bytes"] = w;
  d["step_weight_bytes"] = m.gpu->step_weight_bytes();
  d["formats"] = m.model->formats();
  d["parallelism"] = par;
  d["kv_cache_bytes"] = kv;
  d["kv_cache_tokens"] = capacity;
  d["batch"] = max_batch;
  d["workspace_bytes"] = ws;
  d["describe_seconds"] = describe_s;
  d["upload_seconds"] = upload_s;
  d["reused_bytes"] = reused;
  d["workspace_seconds"] = workspace_s;
  d["device_free_bytes"] = free_b;
}

void DecodeWarmup::warm_up(validate::PhaseScope& scope) {
  Impl& m = *impl_;
  const uint64_t V = m.model->config().vocab;
  ojson per_batch = ojson::array();
  std::string list;
  for (auto it = m.batches.rbegin(); it != m.batches.rend(); ++it) {  // the largest first, as a profile run
    const int b = *it;
    m.ids[b] = model::seeded_token_ids(V, static_cast<uint64_t>(b), 1, kIdSeed).ids;
    m.gpu->reset();
    const auto t = std::chrono::steady_clock::now();
    std::vector<double> logits = m.gpu->decode(m.ids[b], false);
    const double step_s = seconds_since(t);
    const uint64_t bad = nonfinite(logits);
    if (bad) {
      const std::string weight = first_nonfinite_weight(*m.model);
      scope.fail("decode", m.layout.root, weight,
                 std::to_string(bad) + " of the " + std::to_string(logits.size()) + " logits of the decode step at batch " +
                     std::to_string(b) + " are NaN/Inf" +
                     (weight.empty() ? " (no weight holds one: the activations overflowed)" : ": this weight holds NaN/Inf"));
    }
    m.eager_logits[b] = std::move(logits);
    list += fmt(list.empty() ? "%.0f:%.2f" : " %.0f:%.2f", b, step_s * 1e3);
    per_batch.push_back({{"batch", b}, {"step_ms", step_s * 1e3}, {"nonfinite_logits", bad}});
  }
  m.gpu->reset();
  scope.phase().summary = "a real decode step of the model (" + count_of(m.model->config().layers, "layer") +
                          ", every Linear in its format's path) run eagerly at each batch size, logits checked finite; "
                          "ms by batch (wall, with the logits copy) {" + list + "}";
  scope.phase().details["steps"] = per_batch;
}

void DecodeWarmup::graphs(validate::PhaseScope& scope) {
  Impl& m = *impl_;
  if (const std::string why = m.gpu->graph_unsupported(); !why.empty()) {
    // MoE: the step holds a host synchronisation; its eager runs above are the warm-up.
    scope.phase().status = validate::PhaseStatus::kSkipped;
    scope.phase().summary = "no CUDA graph: " + why;
    scope.phase().details["graph_unsupported"] = why;
    return;
  }
  ojson per_batch = ojson::array();
  double capture_total = 0, instantiate_total = 0;
  std::string replay_list;
  for (const int b : m.batches) {
    m.gpu->reset();
    const std::vector<double> logits = m.gpu->decode(m.ids.at(b));  // captures, instantiates, launches
    const auto st = m.gpu->graph_stats(static_cast<uint64_t>(b));
    if (!st) throw std::logic_error("DecodeWarmup: no graph after a graphed decode step");
    const std::vector<double>& want = m.eager_logits.at(b);
    uint64_t differ = 0;
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
      if (std::memcmp(&logits[i], &want[i], sizeof(double)) != 0) {
        ++differ;
        worst = std::max(worst, std::fabs(logits[i] - want[i]));
      }
    if (differ)
      scope.fail("graph", m.layout.root, "",
                 std::to_string(differ) + " logits of the CUDA graph's decode step at batch " + std::to_string(b) +
                     " differ from the eager step's (max |delta| " + fmt("%.3g", worst) + "): the replay is not the step");
    m.gpu->reset();
    const auto t = std::chrono::steady_clock::now();
    for (int i = 0; i < kReplays; ++i) m.gpu->enqueue_decode(m.ids.at(b));
    m.gpu->synchronize();
    const double replay_ms = seconds_since(t) * 1e3 / kReplays;
    capture_total += st->capture_s;
    instantiate_total += st->instantiate_s;
    replay_list += fmt(replay_list.empty() ? "%.0f:%.3f" : " %.0f:%.3f", b, replay_ms);
    per_batch.push_back({{"batch", b},
                         {"nodes", st->nodes},
                         {"capture_ms", st->capture_s * 1e3},
                         {"instantiate_ms", st->instantiate_s * 1e3},
                         {"replay_ms", replay_ms},
                         {"logits_equal_eager", differ == 0}});
  }
  m.gpu->reset();
  scope.phase().summary = count_of(m.batches.size(), "decode-step graph") +
                          fmt(": capture %.1f ms, instantiate %.1f ms in all; replay ms per step by batch (wall) {",
                              capture_total * 1e3, instantiate_total * 1e3) +
                          replay_list + "}; logits compared bit for bit with the eager step's";
  scope.phase().details["graphs"] = per_batch;
}

}  // namespace ckpt::cuda
