#include "runtime/gpu_forward.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <cstring>
#include <stdexcept>

#include "core/error.h"
#include "cuda_check.h"
#include "model/cpu_forward.h"
#include "model/rope.h"
#include "runtime/device_linear.h"
#include "runtime/forward_kernels.h"

namespace ckpt::cuda {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

DeviceBuffer upload_doubles(const std::vector<double>& v) {
  const std::vector<float> f(v.begin(), v.end());
  DeviceBuffer b(std::max<size_t>(f.size(), 1) * sizeof(float));
  if (!f.empty()) CKPT_CUDA(cudaMemcpy(b.data(), f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice));
  return b;
}

// cuBLAS's workspace, set explicitly so that a GEMM captured into a graph allocates nothing.
constexpr size_t kBlasWorkspace = size_t{32} << 20;

struct DevMlp {
  DeviceLinear gate, up, gate_up, down;
  uint64_t inter = 0;
  bool present = false;
};

struct RankLayer {
  DeviceLinear q, k, v, qkv, o;
  DevMlp mlp, shared;
  std::vector<DevMlp> experts;  // MoE: by expert id (!present where another rank holds it)
  uint64_t nq = 0, nkv = 0, first_q = 0, first_kv = 0;
  DeviceBuffer keys, values;
};

struct DevLayer {
  DeviceBuffer input_norm, post_norm, q_norm, k_norm, o_bias, down_bias;
  bool has_o_bias = false, has_down_bias = false;
  bool moe = false;
  DeviceLinear router, shared_gate;
  std::vector<RankLayer> ranks;
};

struct DevVocab {
  DeviceLinear table;
  AxisRange rows;
};

}  // namespace

struct GpuForward::Impl {
  const model::Model& m;
  const model::ModelConfig& c;
  uint64_t batch, capacity, length = 0, kv_bytes = 0, w_bytes = 0, embed_bytes = 0;
  uint64_t active = 0;  // sequences of the step being run (decode may take fewer than `batch`)
  int sm_count = 0;
  Stream stream;
  BlasHandle blas;
  DeviceBuffer blas_workspace;
  std::vector<DevLayer> layers;
  std::vector<DevVocab> embed, lm_head;
  DeviceBuffer final_norm, cos, sin;
  uint64_t half = 0;

  // Row widths of the workspace, the largest over ranks, experts and vocab slices.
  uint64_t w_q = 1, w_kv = 1, w_ctx = 1, w_inter = 1, w_lm = 1;
  uint64_t gemm_elems = 0;  // largest N x K of a Linear not stored as float32 (the GEMM scratch)
  std::set<std::pair<uint64_t, uint64_t>> marlin_shapes;  // [n, k] of the Marlin Linears
  DeviceBuffer marlin_scratch;
  // The step's workspace, for `ws_rows` rows; grown (never inside a capture) by prepare().
  uint64_t ws_rows = 0;
  DeviceBuffer ids, start, h, x, y, part, q, k, v, ctx, gu, u, act, lm_part, logits, scratch;
  PinnedBuffer staging;  // ids and start on their way to the device
  ResidentTensors* resident = nullptr;  // during construction only: weights already on the device
  // The logical outputs an observer is shown of a column-parallel Linear, gathered from the ranks.
  DeviceBuffer observed[3];
  uint64_t step_tokens = 0;  // tokens a sequence of the step embed() began (0: none)
  struct StepGraph {
    Graph graph;
    GraphExec exec;
    GpuForward::GraphStats stats;
  };
  std::map<uint64_t, StepGraph> graphs;  // decode steps by batch size

  DeviceLinear upload(const model::LinearWeights& w, const std::vector<double>& bias = {}) {
    DeviceLinear d(w, bias, resident);
    w_bytes += d.bytes();
    if (d.marlin()) marlin_shapes.emplace(d.n(), d.k());
    else if (d.view().elem != WeightElem::kF32) gemm_elems = std::max(gemm_elems, d.n() * d.k());
    return d;
  }
  DeviceLinear upload(const model::RankLinear& l) { return l.present() ? upload(*l.weight, l.bias) : DeviceLinear{}; }

  DevMlp upload_mlp(const model::RankMlp& r) {
    DevMlp d;
    if (!r.present()) return d;
    d.gate = upload(r.gate);
    d.up = upload(r.up);
    d.gate_up = upload(r.gate_up);
    d.down = upload(r.down);
    d.inter = r.local_intermediate;
    d.present = true;
    w_inter = std::max(w_inter, d.inter);
    return d;
  }

  Impl(const model::Model& model, uint64_t b, uint64_t cap, ResidentTensors* res)
      : m(model), c(model.config()), batch(b), capacity(cap), staging(b * cap * sizeof(int64_t) + sizeof(uint64_t)),
        resident(res) {
    stream = new_stream();
    int device = 0;
    CKPT_CUDA(cudaGetDevice(&device));
    CKPT_CUDA(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device));
    CKPT_CUBLAS(cublasCreate(blas.out()));
    CKPT_CUBLAS(cublasSetStream(blas, stream));
    blas_workspace = DeviceBuffer(kBlasWorkspace);
    CKPT_CUBLAS(cublasSetWorkspace(blas, blas_workspace.data(), kBlasWorkspace));
    const model::RopeTable t = model::rope_table(c.rope, capacity);
    half = t.half;
    cos = upload_doubles(t.cos);
    sin = upload_doubles(t.sin);
    final_norm = upload_doubles(m.final_norm());
    for (const auto& s : m.embed()) {
      embed.push_back({upload(*s.table), s.rows});
      embed_bytes += embed.back().table.bytes();
    }
    for (const auto& s : m.lm_head()) {
      lm_head.push_back({upload(*s.table), s.rows});
      w_lm = std::max(w_lm, lm_head.back().table.n());
    }
    for (const auto& L : m.layers()) {
      DevLayer d;
      d.input_norm = upload_doubles(L.input_norm);
      d.post_norm = upload_doubles(L.post_norm);
      if (c.qk_norm) {
        d.q_norm = upload_doubles(L.q_norm);
        d.k_norm = upload_doubles(L.k_norm);
      }
      d.has_o_bias = !L.o_bias.empty();
      if (d.has_o_bias) d.o_bias = upload_doubles(L.o_bias);
      d.has_down_bias = !L.down_bias.empty();
      if (d.has_down_bias) d.down_bias = upload_doubles(L.down_bias);
      d.moe = L.moe;
      if (L.router) d.router = upload(*L.router);
      if (L.shared_gate) d.shared_gate = upload(*L.shared_gate);
      for (size_t r = 0; r < L.attention.size(); ++r) {
        const model::RankAttention& a = L.attention[r];
        RankLayer rl;
        if (L.moe) {
          for (const auto& e : L.experts[r].experts) rl.experts.push_back(upload_mlp(e));
          rl.shared = upload_mlp(L.experts[r].shared);
        } else {
          rl.mlp = upload_mlp(L.mlp[r]);
        }
        rl.q = upload(a.q);
        rl.k = upload(a.k);
        rl.v = upload(a.v);
        rl.qkv = upload(a.qkv);
        rl.o = upload(a.o);
        rl.nq = a.q_heads.size();
        rl.nkv = a.kv_heads.size();
        rl.first_q = a.q_heads.front();
        rl.first_kv = a.kv_heads.front();
        w_q = std::max({w_q, rl.q.n(), rl.qkv.n()});
        w_kv = std::max(w_kv, rl.k.n());
        w_ctx = std::max(w_ctx, rl.nq * c.head_dim);
        const uint64_t kv = batch * capacity * rl.nkv * c.head_dim * sizeof(float);
        rl.keys = DeviceBuffer(kv);
        rl.values = DeviceBuffer(kv);
        kv_bytes += 2 * kv;
        d.ranks.push_back(std::move(rl));
      }
      layers.push_back(std::move(d));
    }
    start = DeviceBuffer(sizeof(uint64_t));
    // The device-to-device copies from `resident` ran on the legacy stream, which `stream` does
    // not wait for, and the caller may free `resident` next.
    if (resident) CKPT_CUDA(cudaDeviceSynchronize());
    resident = nullptr;
  }

  // Workspace for `rows` rows, and the GEMM scratch when rows take the GEMM path. Called before
  // any work of a step is enqueued (and before a capture), so nothing is freed under running work.
  // A captured graph holds the buffers' addresses: growing any of them drops it (it is captured
  // again on the next decode step).
  void prepare(uint64_t rows) {
    if (rows > kSkinnyMaxRows && scratch.size() < gemm_elems * sizeof(float)) {
      drop_graph();
      scratch = DeviceBuffer(std::max<uint64_t>(gemm_elems, 1) * sizeof(float));
    }
    // The Marlin scratch for any row count up to `rows` (its K split, hence its workspace, is
    // not monotonic in the rows).
    uint64_t marlin_bytes = 0;
    for (const auto& [n, k] : marlin_shapes)
      for (uint64_t r = 1; r <= rows; ++r)
        marlin_bytes = std::max(marlin_bytes, DeviceLinear::marlin_scratch_bytes(n, k, r, sm_count));
    if (marlin_scratch.size() < marlin_bytes) {
      drop_graph();
      marlin_scratch = DeviceBuffer(marlin_bytes);
    }
    if (rows <= ws_rows) return;
    drop_graph();
    const uint64_t H = c.hidden;
    auto floats = [&](uint64_t width) { return DeviceBuffer(rows * width * sizeof(float)); };
    ids = DeviceBuffer(rows * sizeof(int64_t));
    h = floats(H);
    x = floats(H);
    y = floats(H);
    part = floats(H);
    q = floats(w_q);
    k = floats(w_kv);
    v = floats(w_kv);
    ctx = floats(w_ctx);
    gu = floats(2 * w_inter);
    u = floats(w_inter);
    act = floats(w_inter);
    lm_part = floats(w_lm);
    logits = floats(c.vocab);
    ws_rows = rows;
  }

  void drop_graph() { graphs.clear(); }

  LinearContext linear_ctx() const {
    return {stream, blas, scratch.as<float>(), scratch.size() / sizeof(float), marlin_scratch.as<uint8_t>(),
            marlin_scratch.size(), sm_count};
  }
  void apply(const DeviceLinear& l, const float* in, uint64_t rows, float* out, bool accumulate = false) const {
    l.apply(in, rows, out, linear_ctx(), accumulate);
  }

  // x = RMSNorm(hid) with `norm`: a block's input where its first Linears do not fold the norm in.
  const float* normalized(const float* hid, const DeviceBuffer& norm, uint64_t rows) {
    CKPT_CUDA(rms_norm_rows(hid, rows, c.hidden, norm.as<float>(), float(c.rms_eps), x.as<float>(), stream));
    return x.as<float>();
  }

  // Adds the attention block's output (its input RMSNorm(hid) with input_norm) into the residual
  // `hid`. One rank's o_proj accumulates into it in its own kernel; several ranks' partials are
  // summed into y in rank order first (as the CPU reference sums them), then added. An observer
  // sees the reduced output in y, so with one the single rank takes the second path too.
  // `fold` (run_layer): the RMSNorm folded into the q/k/v (or qkv) GEMV where the skinny kernel
  // takes them (DeviceLinear::apply_normed): no norm kernel, no x.
  void attention(const DevLayer& d, uint64_t layer, float* hid, uint64_t tokens, DeviceActivationObserver* obs,
                 bool fold) {
    const uint64_t rows = active * tokens, hd = c.head_dim, H = c.hidden;
    const bool one = d.ranks.size() == 1 && !obs;
    const float* in = nullptr;  // x = RMSNorm(hid), written once for every rank that needs it
    auto input = [&] { return in ? in : (in = normalized(hid, d.input_norm, rows)); };
    auto folded = [&](const std::vector<std::pair<const DeviceLinear*, float*>>& outs) {
      return fold && DeviceLinear::apply_normed(outs, hid, d.input_norm.as<float>(), float(c.rms_eps), rows, linear_ctx());
    };
    if (!one) CKPT_CUDA(cudaMemsetAsync(y.data(), 0, rows * H * sizeof(float), stream));
    const model::Layer& L = m.layers()[layer];
    const bool fused = d.ranks.front().qkv.present();
    if (obs) {
      if (fused) observed[0].reserve(rows * (c.q_rows() + 2 * c.kv_rows()) * sizeof(float));
      else {
        observed[0].reserve(rows * c.q_rows() * sizeof(float));
        observed[1].reserve(rows * c.kv_rows() * sizeof(float));
        observed[2].reserve(rows * c.kv_rows() * sizeof(float));
      }
    }
    for (size_t ri = 0; ri < d.ranks.size(); ++ri) {
      const RankLayer& r = d.ranks[ri];
      const model::RankAttention& ra = L.attention[ri];
      const uint64_t qw = r.nq * hd, kw = r.nkv * hd;
      AttentionArgs a{};
      a.q = q.as<float>();
      if (r.qkv.present()) {
        if (!folded({{&r.qkv, q.as<float>()}})) apply(r.qkv, input(), rows, q.as<float>());
        if (obs) gather(q.as<float>(), r.qkv.n(), ra.qkv.rows, rows, observed[0].as<float>(), c.q_rows() + 2 * c.kv_rows());
        a.q_stride = r.qkv.n();
        a.k_new = a.v_new = q.as<float>();
        a.kv_stride = r.qkv.n();
        a.k_col = qw;
        a.v_col = qw + kw;
      } else {
        const std::vector<std::pair<const DeviceLinear*, float*>> qkv = {
            {&r.q, q.as<float>()}, {&r.k, k.as<float>()}, {&r.v, v.as<float>()}};
        if (!folded(qkv)) DeviceLinear::apply_same_input(qkv, input(), rows, linear_ctx());
        a.q_stride = qw;
        a.k_new = k.as<float>();
        a.v_new = v.as<float>();
        a.kv_stride = kw;
        if (obs) {  // before Qwen3's q/k norm, as the reference shows them
          gather(q.as<float>(), qw, ra.q.rows, rows, observed[0].as<float>(), c.q_rows());
          gather(k.as<float>(), kw, ra.k.rows, rows, observed[1].as<float>(), c.kv_rows());
          gather(v.as<float>(), kw, ra.v.rows, rows, observed[2].as<float>(), c.kv_rows());
        }
        if (c.qk_norm) {
          CKPT_CUDA(rms_norm_rows(q.as<float>(), rows * r.nq, hd, d.q_norm.as<float>(), float(c.rms_eps), q.as<float>(), stream));
          CKPT_CUDA(rms_norm_rows(k.as<float>(), rows * r.nkv, hd, d.k_norm.as<float>(), float(c.rms_eps), k.as<float>(), stream));
        }
      }
      a.k_cache = r.keys.as<float>();
      a.v_cache = r.values.as<float>();
      a.out = ctx.as<float>();
      a.start = start.as<uint64_t>();
      a.batch = active;
      a.tokens = tokens;
      a.capacity = capacity;
      a.q_heads = r.nq;
      a.kv_heads = r.nkv;
      a.head_dim = hd;
      a.group = c.heads / c.kv_heads;
      a.first_q_head = r.first_q;
      a.first_kv_head = r.first_kv;
      a.window = c.sliding_window[layer];
      a.scale = float(c.attention_scale());
      a.cos = cos.as<float>();
      a.sin = sin.as<float>();
      a.half = half;
      CKPT_CUDA(cuda::attention(a, stream));
      if (one) {
        apply(r.o, ctx.as<float>(), rows, hid, true);
      } else {
        apply(r.o, ctx.as<float>(), rows, part.as<float>());
        CKPT_CUDA(add_into(y.as<float>(), part.as<float>(), rows * H, stream));  // row-parallel partials, rank order
      }
    }
    if (obs) {
      if (fused) {
        obs->on(layer, model::short_module_name(L.attention[0].qkv.module), observed[0].as<float>(), rows,
                c.q_rows() + 2 * c.kv_rows(), stream);
      } else {
        obs->on(layer, model::short_module_name(L.attention[0].q.module), observed[0].as<float>(), rows, c.q_rows(), stream);
        obs->on(layer, model::short_module_name(L.attention[0].k.module), observed[1].as<float>(), rows, c.kv_rows(), stream);
        obs->on(layer, model::short_module_name(L.attention[0].v.module), observed[2].as<float>(), rows, c.kv_rows(), stream);
      }
    }
    add_reduced(one, d.has_o_bias ? d.o_bias.as<float>() : nullptr, rows, hid, obs, layer, "self_attn.o_proj");
  }

  // One rank's output columns ([rows][local_stride], its ranges in order from column 0) placed at
  // their logical columns of `logical` [rows][width], as the reference's observer gathers them.
  void gather(const float* local, uint64_t local_stride, const std::vector<AxisRange>& ranges, uint64_t rows,
              float* logical, uint64_t width) {
    uint64_t col = 0;
    for (const AxisRange& r : ranges) {
      CKPT_CUDA(copy_columns(local, local_stride, col, logical, width, r.begin, rows, r.length, stream));
      col += r.length;
    }
  }

  // After a row-parallel Linear: its bias (added once, after the reduce) and, for several ranks
  // (or an observer, which sees the reduced output as `name`), their sum in y into the residual.
  void add_reduced(bool one, const float* bias, uint64_t rows, float* hid, DeviceActivationObserver* obs,
                   uint64_t layer, const char* name) {
    const uint64_t H = c.hidden;
    if (one) {
      if (bias) CKPT_CUDA(add_bias(hid, bias, rows, H, stream));
      return;
    }
    if (bias) CKPT_CUDA(add_bias(y.as<float>(), bias, rows, H, stream));
    if (obs) obs->on(layer, name, y.as<float>(), rows, H, stream);
    CKPT_CUDA(add_into(hid, y.as<float>(), rows * H, stream));
  }

  // One rank's gated MLP on `rows` rows of `in`: its partial down_proj output into `out` (added
  // to it with `accumulate`).
  void run_mlp(const DevMlp& p, const float* in, uint64_t rows, float* out, bool accumulate = false) {
    const uint64_t n = p.inter;
    if (p.gate_up.present()) {
      apply(p.gate_up, in, rows, gu.as<float>());
      CKPT_CUDA(silu_mul(gu.as<float>(), 2 * n, 0, gu.as<float>(), 2 * n, n, rows, n, act.as<float>(), stream));
    } else {
      DeviceLinear::apply_same_input({{&p.gate, gu.as<float>()}, {&p.up, u.as<float>()}}, in, rows, linear_ctx());
      CKPT_CUDA(silu_mul(gu.as<float>(), n, 0, u.as<float>(), n, 0, rows, n, act.as<float>(), stream));
    }
    apply(p.down, act.as<float>(), rows, out, accumulate);
  }

  // Adds the dense MLP's output (its input RMSNorm(hid) with post_norm) into the residual `hid`,
  // ranks (and an observer) as in attention(). `fold` (run_layer): the RMSNorm folded into the
  // gate/up GEMV and SiLU(gate) * up into its epilogue where the skinny kernel takes them
  // (DeviceLinear::apply_gated): one launch writes act, no norm or SiLU kernel.
  void mlp(const DevLayer& d, uint64_t layer, float* hid, uint64_t rows, DeviceActivationObserver* obs, bool fold) {
    const uint64_t H = c.hidden, I = c.intermediate;
    const bool one = d.ranks.size() == 1 && !obs;
    const model::Layer& L = m.layers()[layer];
    const bool fused = d.ranks.front().mlp.gate_up.present();
    if (one) {
      const DevMlp& p = d.ranks[0].mlp;
      if (fold && DeviceLinear::apply_gated(fused ? p.gate_up : p.gate, fused ? nullptr : &p.up, hid, d.post_norm.as<float>(),
                                    float(c.rms_eps), rows, act.as<float>(), linear_ctx()))
        apply(p.down, act.as<float>(), rows, hid, true);
      else
        run_mlp(p, normalized(hid, d.post_norm, rows), rows, hid, true);
    } else {
      const float* in = normalized(hid, d.post_norm, rows);
      if (obs) {
        observed[0].reserve(rows * (fused ? 2 * I : I) * sizeof(float));
        if (!fused) observed[1].reserve(rows * I * sizeof(float));
      }
      CKPT_CUDA(cudaMemsetAsync(y.data(), 0, rows * H * sizeof(float), stream));
      for (size_t ri = 0; ri < d.ranks.size(); ++ri) {
        const DevMlp& p = d.ranks[ri].mlp;
        run_mlp(p, in, rows, part.as<float>());
        CKPT_CUDA(add_into(y.as<float>(), part.as<float>(), rows * H, stream));  // row-parallel partials, rank order
        if (!obs) continue;
        // run_mlp leaves gate/up (or gate_up) in gu and u until the next rank's.
        if (fused) {
          gather(gu.as<float>(), 2 * p.inter, L.mlp[ri].gate_up.rows, rows, observed[0].as<float>(), 2 * I);
        } else {
          gather(gu.as<float>(), p.inter, L.mlp[ri].gate.rows, rows, observed[0].as<float>(), I);
          gather(u.as<float>(), p.inter, L.mlp[ri].up.rows, rows, observed[1].as<float>(), I);
        }
      }
      if (obs) {
        if (fused) {
          obs->on(layer, model::short_module_name(L.mlp[0].gate_up.module), observed[0].as<float>(), rows, 2 * I, stream);
        } else {
          obs->on(layer, model::short_module_name(L.mlp[0].gate.module), observed[0].as<float>(), rows, I, stream);
          obs->on(layer, model::short_module_name(L.mlp[0].up.module), observed[1].as<float>(), rows, I, stream);
        }
      }
    }
    const std::string down = obs ? model::short_module_name(L.mlp[0].down.module) : "";  // not on the decode path
    add_reduced(one, d.has_down_bias ? d.down_bias.as<float>() : nullptr, rows, hid, obs, layer, down.c_str());
  }

  // The MoE block: router logits on the GPU, routing on the host by the reference's route(), each
  // expert on its gathered rows (every rank's share summed), weighted back into the rows. Its host
  // synchronisation is why MoE decode steps are not captured in graphs.
  void moe(const DevLayer& d, uint64_t layer, const float* in, uint64_t rows, float* out, DeviceActivationObserver* obs) {
    const uint64_t H = c.hidden, E = c.moe->experts;
    const model::Layer& L = m.layers()[layer];
    const std::string router_name = model::short_module_name(L.router_module);
    const std::string block = router_name.substr(0, router_name.size() - 4);  // "mlp.gate" -> "mlp."
    CKPT_CUDA(cudaMemsetAsync(out, 0, rows * H * sizeof(float), stream));
    DeviceBuffer router_logits(rows * E * sizeof(float));
    apply(d.router, in, rows, router_logits.as<float>());
    if (obs) obs->on(layer, router_name, router_logits.as<float>(), rows, E, stream);
    std::vector<float> host(rows * E);
    CKPT_CUDA(cudaMemcpyAsync(host.data(), router_logits.data(), host.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CKPT_CUDA(cudaStreamSynchronize(stream));
    const std::vector<model::ExpertRows> routed = model::route(std::vector<double>(host.begin(), host.end()), rows, *c.moe);
    for (uint64_t e = 0; e < E; ++e) {
      const uint64_t n = routed[e].rows.size();
      if (n == 0) continue;
      std::vector<int64_t> idx(routed[e].rows.begin(), routed[e].rows.end());
      std::vector<float> w(routed[e].weights.begin(), routed[e].weights.end());
      DeviceBuffer d_idx(n * sizeof(int64_t)), d_w(n * sizeof(float)), xs(n * H * sizeof(float)), ys(n * H * sizeof(float)),
          ps(n * H * sizeof(float));
      CKPT_CUDA(cudaMemcpyAsync(d_idx.data(), idx.data(), n * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
      CKPT_CUDA(cudaMemcpyAsync(d_w.data(), w.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
      CKPT_CUDA(gather_rows(in, d_idx.as<int64_t>(), n, H, xs.as<float>(), stream));
      CKPT_CUDA(cudaMemsetAsync(ys.data(), 0, n * H * sizeof(float), stream));
      for (const RankLayer& r : d.ranks) {
        if (!r.experts[e].present) continue;
        run_mlp(r.experts[e], xs.as<float>(), n, ps.as<float>());
        CKPT_CUDA(add_into(ys.as<float>(), ps.as<float>(), n * H, stream));
      }
      if (obs) obs->on(layer, block + "experts." + std::to_string(e), ys.as<float>(), n, H, stream);
      CKPT_CUDA(scatter_add_weighted(ys.as<float>(), d_idx.as<int64_t>(), d_w.as<float>(), n, H, out, stream));
      CKPT_CUDA(cudaStreamSynchronize(stream));  // idx and w are host vectors of this iteration
    }
    if (obs) obs->on(layer, block + "experts", out, rows, H, stream);
    if (d.shared_gate.present()) {
      DeviceBuffer shared(rows * H * sizeof(float)), gate(rows * sizeof(float));
      CKPT_CUDA(cudaMemsetAsync(shared.data(), 0, rows * H * sizeof(float), stream));
      for (const RankLayer& r : d.ranks) {
        run_mlp(r.shared, in, rows, part.as<float>());
        CKPT_CUDA(add_into(shared.as<float>(), part.as<float>(), rows * H, stream));
      }
      apply(d.shared_gate, in, rows, gate.as<float>());
      CKPT_CUDA(scale_rows_sigmoid(shared.as<float>(), gate.as<float>(), rows, H, stream));
      if (obs) obs->on(layer, block + "shared_expert", shared.as<float>(), rows, H, stream);
      CKPT_CUDA(add_into(out, shared.as<float>(), rows * H, stream));
    }
  }

  // The checks of a step, its ids and position copied into the device buffers the step reads
  // (through pinned staging: the copies are asynchronous; the caller waits before staging again).
  void begin_step(const std::vector<int64_t>& in_ids, uint64_t tokens, uint64_t sequences) {
    if (sequences < 1 || sequences > batch || in_ids.size() != sequences * tokens)
      throw std::logic_error("GpuForward: ids are not sequences x tokens, 1 <= sequences <= batch");
    if (length + tokens > capacity)
      fail(Errc::kInvalidArgument, "", "", "sequence of " + std::to_string(length + tokens) +
                                               " tokens exceeds the KV cache of " + std::to_string(capacity));
    for (int64_t id : in_ids)
      if (id < 0 || static_cast<uint64_t>(id) >= c.vocab)
        fail(Errc::kInvalidArgument, "", "", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                 std::to_string(c.vocab) + ")");
    CKPT_CUDA(cudaStreamSynchronize(stream));  // the previous step (its staged copies, its graph) is done
    step_tokens = 0;  // a step begun by embed() ends here
    // At least the whole batch's rows: a decode graph captured for fewer sequences stays valid.
    prepare(std::max(sequences * tokens, batch));
    active = sequences;
    uint8_t* st = staging.data();
    std::memcpy(st, &length, sizeof(uint64_t));
    std::memcpy(st + sizeof(uint64_t), in_ids.data(), in_ids.size() * sizeof(int64_t));
    CKPT_CUDA(cudaMemcpyAsync(start.data(), st, sizeof(uint64_t), cudaMemcpyHostToDevice, stream));
    CKPT_CUDA(cudaMemcpyAsync(ids.data(), st + sizeof(uint64_t), in_ids.size() * sizeof(int64_t),
                              cudaMemcpyHostToDevice, stream));
  }

  // The step on the ids and position already in device memory, logits into `logits`: only
  // asynchronous work on `stream` (for dense models), so it can be captured.
  void enqueue(uint64_t tokens) {
    const uint64_t rows = active * tokens, H = c.hidden;
    CKPT_CUDA(cudaMemsetAsync(h.data(), 0, rows * H * sizeof(float), stream));
    for (const DevVocab& e : embed)
      CKPT_CUDA(embed_rows(e.table.view(), e.rows.begin, e.rows.length, ids.as<int64_t>(), rows, h.as<float>(), stream));
    for (uint64_t i = 0; i < layers.size(); ++i) run_layer(i, h.as<float>(), tokens, nullptr, true);
    enqueue_logits(h.as<float>(), rows, true);
  }

  // Layer i on the residual stream `hid` [active * tokens][hidden]. `fused_step`: a step of
  // forward() / decode(), which fold the RMSNorms and SiLU * up into the GEMVs where one rank runs
  // (so the decode step's graph holds no kernel of theirs); the step in pieces (layer(), the
  // comparisons of validate --against) keeps them unfused, the same kernels with and without an
  // observer, so a recorded and an unrecorded model compare like for like.
  void run_layer(uint64_t i, float* hid, uint64_t tokens, DeviceActivationObserver* obs, bool fused_step) {
    const uint64_t rows = active * tokens, H = c.hidden;
    const DevLayer& d = layers[i];
    const bool fold = fused_step && d.ranks.size() == 1 && !obs;
    attention(d, i, hid, tokens, obs, fold);
    if (d.moe) {
      moe(d, i, normalized(hid, d.post_norm, rows), rows, y.as<float>(), obs);
      CKPT_CUDA(add_into(hid, y.as<float>(), rows * H, stream));
    } else {
      mlp(d, i, hid, rows, obs, fold);
    }
    if (obs) obs->on(i, "output", hid, rows, H, stream);
  }

  // Final norm + lm_head of `rows` (<= ws_rows) rows of `hid` into `logits`. `fold` (forward(),
  // decode(): see run_layer) with one slice of the whole vocabulary: the norm folded into its GEMV
  // where the skinny kernel takes it.
  void enqueue_logits(const float* hid, uint64_t rows, bool fold) {
    const uint64_t V = c.vocab;
    const bool whole = lm_head.size() == 1 && lm_head[0].table.n() == V;
    if (fold && whole && DeviceLinear::apply_normed({{&lm_head[0].table, logits.as<float>()}}, hid, final_norm.as<float>(),
                                            float(c.rms_eps), rows, linear_ctx()))
      return;
    normalized(hid, final_norm, rows);
    if (whole) {
      apply(lm_head[0].table, x.as<float>(), rows, logits.as<float>());
      return;
    }
    for (const DevVocab& s : lm_head) {  // each slice's rows without its padding, at their logical place
      apply(s.table, x.as<float>(), rows, lm_part.as<float>());
      CKPT_CUDA(copy_columns(lm_part.as<float>(), s.table.n(), 0, logits.as<float>(), V, s.rows.begin, rows,
                             s.rows.length, stream));
    }
  }

  std::vector<double> read_logits(uint64_t rows) {
    std::vector<float> host(rows * c.vocab);
    CKPT_CUDA(cudaMemcpyAsync(host.data(), logits.data(), host.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CKPT_CUDA(cudaStreamSynchronize(stream));
    return std::vector<double>(host.begin(), host.end());
  }

  DeviceBuffer step_embed(const std::vector<int64_t>& in_ids) {
    if (in_ids.empty() || in_ids.size() % batch)
      throw std::logic_error("GpuForward::embed: ids are not batch x tokens");
    const uint64_t tokens = in_ids.size() / batch, rows = in_ids.size(), H = c.hidden;
    begin_step(in_ids, tokens, batch);
    DeviceBuffer hid(rows * H * sizeof(float));
    CKPT_CUDA(cudaMemsetAsync(hid.data(), 0, rows * H * sizeof(float), stream));
    for (const DevVocab& e : embed)
      CKPT_CUDA(embed_rows(e.table.view(), e.rows.begin, e.rows.length, ids.as<int64_t>(), rows, hid.as<float>(), stream));
    step_tokens = tokens;
    return hid;
  }

  void step_layer(uint64_t i, float* hid, uint64_t tokens, DeviceActivationObserver* obs) {
    if (step_tokens == 0 || tokens != step_tokens || i >= layers.size())
      throw std::logic_error("GpuForward::layer: no step of this many tokens begun by embed(), or no such layer");
    run_layer(i, hid, tokens, obs, false);
  }

  std::vector<float> step_logits(const float* hid, uint64_t rows) {
    const uint64_t H = c.hidden, V = c.vocab;
    std::vector<float> host(rows * V);
    CKPT_CUDA(cudaStreamSynchronize(stream));
    if (ws_rows == 0) prepare(batch);
    for (uint64_t first = 0; first < rows; first += ws_rows) {  // the workspace's rows at a time
      const uint64_t n = std::min(ws_rows, rows - first);
      enqueue_logits(hid + first * H, n, false);
      CKPT_CUDA(cudaMemcpyAsync(host.data() + first * V, logits.data(), n * V * sizeof(float), cudaMemcpyDeviceToHost, stream));
      CKPT_CUDA(cudaStreamSynchronize(stream));
    }
    return host;
  }

  std::vector<double> forward(const std::vector<int64_t>& in_ids, uint64_t tokens) {
    begin_step(in_ids, tokens, batch);
    enqueue(tokens);
    length += tokens;
    return read_logits(batch * tokens);
  }

  std::string graph_unsupported() const {
    if (c.moe)
      return "MoE layers route on the host (router logits copied back and route() run there), a host "
             "synchronisation inside the step that a CUDA graph cannot hold; the step runs eagerly";
    return "";
  }

  void enqueue_decode(const std::vector<int64_t>& in_ids, bool use_graph = true) {
    begin_step(in_ids, 1, in_ids.size());
    if (!use_graph || !graph_unsupported().empty()) {
      enqueue(1);
    } else {
      StepGraph& g = graphs[active];
      if (!g.exec) {
        auto t = std::chrono::steady_clock::now();
        {
          CKPT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
          CaptureGuard capturing(stream);
          enqueue(1);
          CKPT_CUDA(cudaStreamEndCapture(stream, g.graph.out()));
        }
        g.stats.capture_s = seconds_since(t);
        t = std::chrono::steady_clock::now();
        CKPT_CUDA(cudaGraphInstantiate(g.exec.out(), g.graph, 0));
        g.stats.instantiate_s = seconds_since(t);
        size_t nodes = 0;
        CKPT_CUDA(cudaGraphGetNodes(g.graph, nullptr, &nodes));
        g.stats.nodes = nodes;
      }
      CKPT_CUDA(cudaGraphLaunch(g.exec, stream));
    }
    length += 1;
  }
};

GpuForward::GpuForward(const model::Model& m, uint64_t batch, uint64_t capacity, ResidentTensors* resident)
    : impl_(std::make_unique<Impl>(m, batch, capacity, resident)) {}
GpuForward::~GpuForward() = default;
std::vector<double> GpuForward::forward(const std::vector<int64_t>& ids, uint64_t tokens) { return impl_->forward(ids, tokens); }
std::vector<double> GpuForward::decode(const std::vector<int64_t>& ids, bool graph) {
  impl_->enqueue_decode(ids, graph);
  return impl_->read_logits(impl_->active);
}
std::optional<GpuForward::GraphStats> GpuForward::graph_stats(uint64_t b) const {
  auto it = impl_->graphs.find(b);
  if (it == impl_->graphs.end() || !it->second.exec) return std::nullopt;
  return it->second.stats;
}
uint64_t GpuForward::batch() const { return impl_->batch; }
void GpuForward::prepare_decode() {
  CKPT_CUDA(cudaStreamSynchronize(impl_->stream));
  impl_->prepare(impl_->batch);
}
uint64_t GpuForward::workspace_bytes() const {
  const Impl& m = *impl_;
  uint64_t n = m.blas_workspace.size() + m.scratch.size() + m.marlin_scratch.size();
  for (const DeviceBuffer* b : {&m.ids, &m.h, &m.x, &m.y, &m.part, &m.q, &m.k, &m.v, &m.ctx, &m.gu, &m.u, &m.act,
                                &m.lm_part, &m.logits})
    n += b->size();
  return n;
}
std::string GpuForward::graph_unsupported() const { return impl_->graph_unsupported(); }
void GpuForward::enqueue_decode(const std::vector<int64_t>& ids) { impl_->enqueue_decode(ids); }
void GpuForward::synchronize() { CKPT_CUDA(cudaStreamSynchronize(impl_->stream)); }
DeviceBuffer GpuForward::embed(const std::vector<int64_t>& ids) { return impl_->step_embed(ids); }
void GpuForward::layer(uint64_t i, float* hidden, uint64_t tokens, DeviceActivationObserver* observer) {
  impl_->step_layer(i, hidden, tokens, observer);
}
void GpuForward::commit(uint64_t tokens) {
  impl_->length += tokens;
  impl_->step_tokens = 0;
}
std::vector<float> GpuForward::logits(const float* hidden, uint64_t rows) { return impl_->step_logits(hidden, rows); }
cudaStream_t GpuForward::stream() const { return impl_->stream; }
uint64_t GpuForward::length() const { return impl_->length; }
void GpuForward::reset() {
  impl_->length = 0;
  impl_->step_tokens = 0;
}
uint64_t GpuForward::kv_cache_bytes() const { return impl_->kv_bytes; }
uint64_t GpuForward::weight_bytes() const { return impl_->w_bytes; }
uint64_t GpuForward::step_weight_bytes() const { return impl_->w_bytes - impl_->embed_bytes; }

}  // namespace ckpt::cuda
