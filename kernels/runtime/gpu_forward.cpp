#include "runtime/gpu_forward.h"

#include <algorithm>
#include <stdexcept>

#include "core/error.h"
#include "cuda_check.h"
#include "model/cpu_forward.h"
#include "model/rope.h"
#include "runtime/forward_kernels.h"

namespace ckpt::cuda {

namespace {

DeviceBuffer upload_floats(const std::vector<float>& v) {
  DeviceBuffer b(std::max<size_t>(v.size(), 1) * sizeof(float));
  if (!v.empty()) CKPT_CUDA(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return b;
}

DeviceBuffer upload_doubles(const std::vector<double>& v) { return upload_floats(std::vector<float>(v.begin(), v.end())); }

struct DevLinear {
  DeviceBuffer w, bias;  // [n][k] float32; bias [n] (empty: none)
  uint64_t n = 0, k = 0;
  bool present = false;
};

// The weight dequantized by the CPU reference (LinearWeights::dequantize_rows), in row chunks,
// rounded to float32 and uploaded.
DevLinear upload_linear(const model::LinearWeights& w, const std::vector<double>& bias, uint64_t* bytes) {
  DevLinear d;
  d.n = w.out_features();
  d.k = w.in_features();
  d.present = true;
  d.w = DeviceBuffer(d.n * d.k * sizeof(float));
  const uint64_t chunk_rows = std::max<uint64_t>(1, (1u << 22) / std::max<uint64_t>(d.k, 1));
  std::vector<double> rows;
  std::vector<float> f;
  for (uint64_t r = 0; r < d.n; r += chunk_rows) {
    const uint64_t count = std::min(chunk_rows, d.n - r);
    rows.resize(count * d.k);
    w.dequantize_rows(r, count, rows.data());
    f.assign(rows.begin(), rows.end());
    CKPT_CUDA(cudaMemcpy(d.w.as<float>() + r * d.k, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  if (!bias.empty()) d.bias = upload_doubles(bias);
  *bytes += d.n * d.k * sizeof(float);
  return d;
}

DevLinear upload(const model::RankLinear& l, uint64_t* bytes) {
  if (!l.present()) return {};
  return upload_linear(*l.weight, l.bias, bytes);
}

struct DevMlp {
  DevLinear gate, up, gate_up, down;
  uint64_t inter = 0;
  bool present = false;
};

DevMlp upload_mlp(const model::RankMlp& m, uint64_t* bytes) {
  DevMlp d;
  if (!m.present()) return d;
  d.gate = upload(m.gate, bytes);
  d.up = upload(m.up, bytes);
  d.gate_up = upload(m.gate_up, bytes);
  d.down = upload(m.down, bytes);
  d.inter = m.local_intermediate;
  d.present = true;
  return d;
}

struct RankLayer {
  DevLinear q, k, v, qkv, o;
  DevMlp mlp, shared;
  std::vector<DevMlp> experts;  // MoE: by expert id (!present where another rank holds it)
  uint64_t nq = 0, nkv = 0, first_q = 0, first_kv = 0;
  DeviceBuffer keys, values;
};

struct DevLayer {
  DeviceBuffer input_norm, post_norm, q_norm, k_norm, o_bias, down_bias;
  bool has_o_bias = false, has_down_bias = false;
  bool moe = false;
  DevLinear router, shared_gate;
  std::vector<RankLayer> ranks;
};

struct DevVocab {
  DevLinear table;
  AxisRange rows;
};

}  // namespace

struct GpuForward::Impl {
  const model::Model& m;
  const model::ModelConfig& c;
  uint64_t batch, capacity, length = 0, kv_bytes = 0, w_bytes = 0;
  Stream stream;
  BlasHandle blas;
  std::vector<DevLayer> layers;
  std::vector<DevVocab> embed, lm_head;
  DeviceBuffer final_norm, cos, sin;
  uint64_t half = 0;

  Impl(const model::Model& model, uint64_t b, uint64_t cap) : m(model), c(model.config()), batch(b), capacity(cap) {
    stream = new_stream();
    CKPT_CUBLAS(cublasCreate(blas.out()));
    CKPT_CUBLAS(cublasSetStream(blas, stream));
    const model::RopeTable t = model::rope_table(c.rope, capacity);
    half = t.half;
    cos = upload_doubles(t.cos);
    sin = upload_doubles(t.sin);
    final_norm = upload_doubles(m.final_norm());
    for (const auto& s : m.embed()) embed.push_back({upload_linear(*s.table, {}, &w_bytes), s.rows});
    for (const auto& s : m.lm_head()) lm_head.push_back({upload_linear(*s.table, {}, &w_bytes), s.rows});
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
      if (L.router) d.router = upload_linear(*L.router, {}, &w_bytes);
      if (L.shared_gate) d.shared_gate = upload_linear(*L.shared_gate, {}, &w_bytes);
      for (size_t r = 0; r < L.attention.size(); ++r) {
        const model::RankAttention& a = L.attention[r];
        RankLayer x;
        if (L.moe) {
          for (const auto& e : L.experts[r].experts) x.experts.push_back(upload_mlp(e, &w_bytes));
          x.shared = upload_mlp(L.experts[r].shared, &w_bytes);
        } else {
          x.mlp = upload_mlp(L.mlp[r], &w_bytes);
        }
        x.q = upload(a.q, &w_bytes);
        x.k = upload(a.k, &w_bytes);
        x.v = upload(a.v, &w_bytes);
        x.qkv = upload(a.qkv, &w_bytes);
        x.o = upload(a.o, &w_bytes);
        x.nq = a.q_heads.size();
        x.nkv = a.kv_heads.size();
        x.first_q = a.q_heads.front();
        x.first_kv = a.kv_heads.front();
        const uint64_t kv = batch * capacity * x.nkv * c.head_dim * sizeof(float);
        x.keys = DeviceBuffer(kv);
        x.values = DeviceBuffer(kv);
        kv_bytes += 2 * kv;
        d.ranks.push_back(std::move(x));
      }
      layers.push_back(std::move(d));
    }
  }

  // y[rows][n] = x[rows][k] W^T (+ bias): column-major y^T = W^T(k x n)^T x^T, float32 compute.
  void gemm(const DevLinear& l, const float* x, uint64_t rows, float* y) {
    const float one = 1.0f, zero = 0.0f;
    CKPT_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(l.n), int(rows), int(l.k), &one, l.w.data(), CUDA_R_32F,
                             int(l.k), x, CUDA_R_32F, int(l.k), &zero, y, CUDA_R_32F, int(l.n), CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
    if (l.bias.size()) CKPT_CUDA(add_bias(y, l.bias.as<float>(), rows, l.n, stream));
  }

  void attention(const DevLayer& d, uint64_t layer, const float* x, uint64_t tokens, float* out) {
    const uint64_t rows = batch * tokens, hd = c.head_dim, H = c.hidden;
    CKPT_CUDA(cudaMemsetAsync(out, 0, rows * H * sizeof(float), stream));
    for (const RankLayer& r : d.ranks) {
      const uint64_t qw = r.nq * hd, kw = r.nkv * hd;
      DeviceBuffer q, k, v, ctx(rows * qw * sizeof(float)), part(rows * H * sizeof(float));
      AttentionArgs a{};
      if (r.qkv.present) {
        q = DeviceBuffer(rows * r.qkv.n * sizeof(float));
        gemm(r.qkv, x, rows, q.as<float>());
        a.q = q.as<float>();
        a.q_stride = r.qkv.n;
        a.k_new = a.v_new = q.as<float>();
        a.kv_stride = r.qkv.n;
        a.k_col = qw;
        a.v_col = qw + kw;
      } else {
        q = DeviceBuffer(rows * qw * sizeof(float));
        k = DeviceBuffer(rows * kw * sizeof(float));
        v = DeviceBuffer(rows * kw * sizeof(float));
        gemm(r.q, x, rows, q.as<float>());
        gemm(r.k, x, rows, k.as<float>());
        gemm(r.v, x, rows, v.as<float>());
        a.q = q.as<float>();
        a.q_stride = qw;
        a.k_new = k.as<float>();
        a.v_new = v.as<float>();
        a.kv_stride = kw;
        if (c.qk_norm) {
          CKPT_CUDA(rms_norm_rows(q.as<float>(), rows * r.nq, hd, d.q_norm.as<float>(), float(c.rms_eps), q.as<float>(), stream));
          CKPT_CUDA(rms_norm_rows(k.as<float>(), rows * r.nkv, hd, d.k_norm.as<float>(), float(c.rms_eps), k.as<float>(), stream));
        }
      }
      CKPT_CUDA(rope_rows(const_cast<float*>(a.q), rows, a.q_stride, a.q_col, r.nq, hd, tokens, length, cos.as<float>(),
                          sin.as<float>(), half, stream));
      CKPT_CUDA(rope_rows(const_cast<float*>(a.k_new), rows, a.kv_stride, a.k_col, r.nkv, hd, tokens, length,
                          cos.as<float>(), sin.as<float>(), half, stream));
      a.k_cache = r.keys.as<float>();
      a.v_cache = r.values.as<float>();
      a.out = ctx.as<float>();
      a.batch = batch;
      a.tokens = tokens;
      a.start = length;
      a.capacity = capacity;
      a.q_heads = r.nq;
      a.kv_heads = r.nkv;
      a.head_dim = hd;
      a.group = c.heads / c.kv_heads;
      a.first_q_head = r.first_q;
      a.first_kv_head = r.first_kv;
      a.window = c.sliding_window[layer];
      a.scale = float(c.attention_scale());
      CKPT_CUDA(cuda::attention(a, stream));
      gemm(r.o, ctx.as<float>(), rows, part.as<float>());
      CKPT_CUDA(add_into(out, part.as<float>(), rows * H, stream));  // row-parallel partials, rank order
    }
    if (d.has_o_bias) CKPT_CUDA(add_bias(out, d.o_bias.as<float>(), rows, H, stream));
  }

  // One rank's gated MLP on `rows` rows of x: its partial down_proj output into `part`.
  void run_mlp(const DevMlp& m, const float* x, uint64_t rows, float* part) {
    const uint64_t n = m.inter;
    DeviceBuffer act(std::max<uint64_t>(rows * n, 1) * sizeof(float));
    if (m.gate_up.present) {
      DeviceBuffer gu(rows * 2 * n * sizeof(float));
      gemm(m.gate_up, x, rows, gu.as<float>());
      CKPT_CUDA(silu_mul(gu.as<float>(), 2 * n, 0, gu.as<float>(), 2 * n, n, rows, n, act.as<float>(), stream));
    } else {
      DeviceBuffer g(rows * n * sizeof(float)), u(rows * n * sizeof(float));
      gemm(m.gate, x, rows, g.as<float>());
      gemm(m.up, x, rows, u.as<float>());
      CKPT_CUDA(silu_mul(g.as<float>(), n, 0, u.as<float>(), n, 0, rows, n, act.as<float>(), stream));
    }
    gemm(m.down, act.as<float>(), rows, part);
  }

  void mlp(const DevLayer& d, const float* x, uint64_t rows, float* out) {
    const uint64_t H = c.hidden;
    CKPT_CUDA(cudaMemsetAsync(out, 0, rows * H * sizeof(float), stream));
    DeviceBuffer part(rows * H * sizeof(float));
    for (const RankLayer& r : d.ranks) {
      run_mlp(r.mlp, x, rows, part.as<float>());
      CKPT_CUDA(add_into(out, part.as<float>(), rows * H, stream));  // row-parallel partials, rank order
    }
    if (d.has_down_bias) CKPT_CUDA(add_bias(out, d.down_bias.as<float>(), rows, H, stream));
  }

  // The MoE block: router logits on the GPU, routing on the host by the reference's route(), each
  // expert on its gathered rows (every rank's share summed), weighted back into the rows.
  void moe(const DevLayer& d, const float* x, uint64_t rows, float* out) {
    const uint64_t H = c.hidden, E = c.moe->experts;
    CKPT_CUDA(cudaMemsetAsync(out, 0, rows * H * sizeof(float), stream));
    DeviceBuffer logits(rows * E * sizeof(float));
    gemm(d.router, x, rows, logits.as<float>());
    std::vector<float> host(rows * E);
    CKPT_CUDA(cudaMemcpyAsync(host.data(), logits.data(), host.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CKPT_CUDA(cudaStreamSynchronize(stream));
    const std::vector<model::ExpertRows> routed = model::route(std::vector<double>(host.begin(), host.end()), rows, *c.moe);
    for (uint64_t e = 0; e < E; ++e) {
      const uint64_t n = routed[e].rows.size();
      if (n == 0) continue;
      std::vector<int64_t> idx(routed[e].rows.begin(), routed[e].rows.end());
      std::vector<float> w(routed[e].weights.begin(), routed[e].weights.end());
      DeviceBuffer d_idx(n * sizeof(int64_t)), d_w(n * sizeof(float)), xs(n * H * sizeof(float)), y(n * H * sizeof(float)),
          part(n * H * sizeof(float));
      CKPT_CUDA(cudaMemcpyAsync(d_idx.data(), idx.data(), n * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
      CKPT_CUDA(cudaMemcpyAsync(d_w.data(), w.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
      CKPT_CUDA(gather_rows(x, d_idx.as<int64_t>(), n, H, xs.as<float>(), stream));
      CKPT_CUDA(cudaMemsetAsync(y.data(), 0, n * H * sizeof(float), stream));
      for (const RankLayer& r : d.ranks) {
        if (!r.experts[e].present) continue;
        run_mlp(r.experts[e], xs.as<float>(), n, part.as<float>());
        CKPT_CUDA(add_into(y.as<float>(), part.as<float>(), n * H, stream));
      }
      CKPT_CUDA(scatter_add_weighted(y.as<float>(), d_idx.as<int64_t>(), d_w.as<float>(), n, H, out, stream));
      CKPT_CUDA(cudaStreamSynchronize(stream));  // idx and w are host vectors of this iteration
    }
    if (d.shared_gate.present) {
      DeviceBuffer shared(rows * H * sizeof(float)), part(rows * H * sizeof(float)), gate(rows * sizeof(float));
      CKPT_CUDA(cudaMemsetAsync(shared.data(), 0, rows * H * sizeof(float), stream));
      for (const RankLayer& r : d.ranks) {
        run_mlp(r.shared, x, rows, part.as<float>());
        CKPT_CUDA(add_into(shared.as<float>(), part.as<float>(), rows * H, stream));
      }
      gemm(d.shared_gate, x, rows, gate.as<float>());
      CKPT_CUDA(scale_rows_sigmoid(shared.as<float>(), gate.as<float>(), rows, H, stream));
      CKPT_CUDA(add_into(out, shared.as<float>(), rows * H, stream));
    }
  }

  std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens) {
    if (ids.size() != batch * tokens) throw std::logic_error("GpuForward::forward: ids are not batch x tokens");
    if (length + tokens > capacity)
      fail(Errc::kInvalidArgument, "", "", "sequence of " + std::to_string(length + tokens) +
                                               " tokens exceeds the KV cache of " + std::to_string(capacity));
    for (int64_t id : ids)
      if (id < 0 || static_cast<uint64_t>(id) >= c.vocab)
        fail(Errc::kInvalidArgument, "", "", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                 std::to_string(c.vocab) + ")");
    const uint64_t rows = batch * tokens, H = c.hidden, V = c.vocab;
    DeviceBuffer d_ids(rows * sizeof(int64_t)), h(rows * H * sizeof(float)), x(rows * H * sizeof(float)),
        y(rows * H * sizeof(float));
    CKPT_CUDA(cudaMemcpyAsync(d_ids.data(), ids.data(), rows * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
    CKPT_CUDA(cudaMemsetAsync(h.data(), 0, rows * H * sizeof(float), stream));
    for (const DevVocab& e : embed)
      CKPT_CUDA(embed_rows(e.table.w.as<float>(), e.rows.begin, e.rows.length, H, d_ids.as<int64_t>(), rows, h.as<float>(), stream));
    for (uint64_t i = 0; i < layers.size(); ++i) {
      const DevLayer& d = layers[i];
      CKPT_CUDA(rms_norm_rows(h.as<float>(), rows, H, d.input_norm.as<float>(), float(c.rms_eps), x.as<float>(), stream));
      attention(d, i, x.as<float>(), tokens, y.as<float>());
      CKPT_CUDA(add_into(h.as<float>(), y.as<float>(), rows * H, stream));
      CKPT_CUDA(rms_norm_rows(h.as<float>(), rows, H, d.post_norm.as<float>(), float(c.rms_eps), x.as<float>(), stream));
      if (d.moe) moe(d, x.as<float>(), rows, y.as<float>());
      else mlp(d, x.as<float>(), rows, y.as<float>());
      CKPT_CUDA(add_into(h.as<float>(), y.as<float>(), rows * H, stream));
    }
    length += tokens;
    CKPT_CUDA(rms_norm_rows(h.as<float>(), rows, H, final_norm.as<float>(), float(c.rms_eps), x.as<float>(), stream));
    std::vector<double> logits(rows * V);
    for (const DevVocab& s : lm_head) {
      const uint64_t n = s.table.n;
      DeviceBuffer part(rows * n * sizeof(float));
      gemm(s.table, x.as<float>(), rows, part.as<float>());
      std::vector<float> host(rows * n);
      CKPT_CUDA(cudaMemcpyAsync(host.data(), part.data(), host.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
      CKPT_CUDA(cudaStreamSynchronize(stream));
      for (uint64_t t = 0; t < rows; ++t)
        std::copy_n(host.begin() + t * n, s.rows.length, logits.begin() + t * V + s.rows.begin);
    }
    return logits;
  }
};

GpuForward::GpuForward(const model::Model& m, uint64_t batch, uint64_t capacity)
    : impl_(std::make_unique<Impl>(m, batch, capacity)) {}
GpuForward::~GpuForward() = default;
std::vector<double> GpuForward::forward(const std::vector<int64_t>& ids, uint64_t tokens) { return impl_->forward(ids, tokens); }
uint64_t GpuForward::length() const { return impl_->length; }
void GpuForward::reset() { impl_->length = 0; }
uint64_t GpuForward::kv_cache_bytes() const { return impl_->kv_bytes; }
uint64_t GpuForward::weight_bytes() const { return impl_->w_bytes; }

}  // namespace ckpt::cuda
