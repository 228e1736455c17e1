// The CUDA forward (kernels/runtime/gpu_forward.h) against the CPU reference forward on every
// testdata architecture (MoE included), the trained Llama, FP8 (tensor / channel / block) and
// INT4 (GPTQ v1 / v2, AWQ, compressed-tensors, act-order g_idx) weights and TP-2 / PP-2 outputs:
// logits within float32 rounding (max |delta| <= 1e-4 of the logit range); prefill + decode
// through the GPU KV cache equal to one pass; decode steps replayed from the CUDA graph equal to
// the eager steps bit for bit; and each Linear path (skinny kernel with 16-byte loads, skinny
// element by element, dequantize + cuBLAS) against the CPU reference's linear_forward; a decode
// step of fewer sequences than the batch (a graph per batch size, one KV cache) equal to a model
// of that batch; and Marlin-layout INT4 (the Marlin W4A16 GEMM: activations and products in the
// scales' 16-bit type) against the same weights in their source layout: logits within
// kMarlinTolerance of the logit range (f16 scales; three times that for bf16), each Linear within
// 1e-2 (3e-2 bf16) of its largest output; the decode GEMV with the RMSNorm folded in and SiLU * up
// in its epilogue against the unfused kernels, and the fused decode step (no norm or SiLU kernel
// in its graph) against the unfused step an observer gets and the CPU reference. Skips without a
// GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>

#include "calib/calibrate.h"
#include "calib/gptq.h"
#include "core/error.h"
#include "cuda_check.h"
#include "gpu_info.h"
#include "model/compare.h"
#include "model/cpu_forward.h"
#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "ops/int4_math.h"
#include "runtime/device_linear.h"
#include "runtime/forward_kernels.h"
#include "runtime/gpu_forward.h"
#include "runtime/linear_kernels.h"
#include "test_support.h"
#include "validate_fixtures.h"

using namespace ckpt;

namespace {

double range_of(const std::vector<double>& v) {
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return *hi - *lo;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

void expect_model_matches_cpu(const model::Model& m, const std::string& what, uint64_t sequences, uint64_t length) {
  model::TokenIds ids = model::seeded_token_ids(m.config().vocab, sequences, length, 7);
  model::CpuForward cpu(m, sequences, length);
  const std::vector<double> want = cpu.forward(ids.ids, length);
  cuda::GpuForward gpu(m, sequences, length);
  const std::vector<double> got = gpu.forward(ids.ids, length);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(max_abs_diff(got, want), 1e-4 * range_of(want)) << what;
}

void expect_matches_cpu(const std::string& path, uint64_t sequences, uint64_t length) {
  auto m = model::Model::open(path);
  expect_model_matches_cpu(*m, path, sequences, length);
}

// Prefill of `prefix` tokens, then `steps` decode steps: decode() (graph replay, or eager where
// graph_unsupported() says why) must give the very logits forward(ids, 1) gives, and both the CPU
// reference's within the tolerance.
// Two CUDA forwards and the CPU reference over the same prefill of `prefix` tokens of B seeded
// sequences, for the tests that then step them `steps` times two ways.
struct TwoForwardsAfterPrefill {
  static constexpr uint64_t B = 2, prefix = 4, steps = 3;
  model::TokenIds ids;
  cuda::GpuForward a, b;
  model::CpuForward cpu;
  TwoForwardsAfterPrefill(const model::Model& m, uint32_t seed)
      : ids(model::seeded_token_ids(m.config().vocab, B, prefix + steps, seed)),
        a(m, B, prefix + steps),
        b(m, B, prefix + steps),
        cpu(m, B, prefix + steps) {
    std::vector<int64_t> first;
    for (uint64_t s = 0; s < B; ++s) first.insert(first.end(), ids.row(s), ids.row(s) + prefix);
    a.forward(first, prefix);
    b.forward(first, prefix);
    cpu.forward(first, prefix);
  }
  // The B ids of position t (prefix <= t < prefix + steps).
  std::vector<int64_t> step(uint64_t t) const {
    std::vector<int64_t> out;
    for (uint64_t s = 0; s < B; ++s) out.push_back(ids.row(s)[t]);
    return out;
  }
};

void expect_graph_decode_equals_eager(const model::Model& m, const std::string& what) {
  TwoForwardsAfterPrefill run(m, 11);
  const uint64_t B = run.B, V = m.config().vocab;
  for (uint64_t t = run.prefix; t < run.prefix + run.steps; ++t) {
    const std::vector<int64_t> step = run.step(t);
    const std::vector<double> a = run.a.decode(step), b = run.b.forward(step, 1), want = run.cpu.forward(step, 1);
    ASSERT_EQ(a.size(), B * V);
    EXPECT_EQ(max_abs_diff(a, b), 0.0) << what << ": graph replay differs from the eager step at position " << t;
    EXPECT_LE(max_abs_diff(a, want), 1e-4 * range_of(want)) << what << ": decode step at position " << t;
  }
}

// --- INT4 weights built from a model's own (RTN of its dequantized values) --------------------

struct Int4Case {
  const char* name;
  ops::Int4Scheme scheme;
  bool act_order = false;  // a g_idx that is not k / G (column k in group k % G)
};

std::vector<Int4Case> int4_cases() {
  // Groups of 32 take the skinny kernel's 16-byte loads; 16 and act-order its element-wise path.
  using F = ops::Int4Format;
  return {
      {"gptq v1 sym g32", {.format = F::kGptq, .group_size = 32, .symmetric = true}},
      {"gptq v1 asym g32 (zero 16)", {.format = F::kGptq, .group_size = 32, .symmetric = false}},
      {"gptq v2 asym g16", {.format = F::kGptq, .group_size = 16, .symmetric = false, .gptq_zero_offset = 0}},
      {"gptq act-order g32", {.format = F::kGptq, .group_size = 32, .symmetric = true, .gptq_zero_offset = 0}, true},
      {"awq asym g32", {.format = F::kAwq, .group_size = 32, .symmetric = false}},
      {"compressed-tensors sym g64 bf16",
       {.format = F::kCompressedTensors, .group_size = 64, .symmetric = true, .scale_dtype = DType::BF16}},
      {"compressed-tensors asym per-row",
       {.format = F::kCompressedTensors, .group_size = -1, .symmetric = false, .scale_dtype = DType::BF16}}};
}

std::shared_ptr<const model::LinearWeights> int4_of(const model::LinearWeights& w, const Int4Case& c) {
  const uint64_t n = w.out_features(), k = w.in_features();
  std::vector<double> values(n * k);
  w.dequantize_rows(0, n, values.data());
  const std::vector<float> f(values.begin(), values.end());
  calib::Int4Weights q;
  if (calib::rtn_int4(c.scheme, f.data(), n, k, &q)) throw std::runtime_error("rtn_int4 failed");
  const ops::Int4Shapes sh = ops::int4_shapes(c.scheme, n, k);
  std::vector<uint8_t> zeros, g_idx;
  if (!sh.zeros.empty()) zeros = calib::int4_array(q, quant::PartRole::kZero);
  if (c.act_order) {
    std::vector<int32_t> g(k);
    for (uint64_t i = 0; i < k; ++i) g[i] = static_cast<int32_t>(i % q.geo.groups);
    g_idx.resize(k * 4);
    std::memcpy(g_idx.data(), g.data(), g_idx.size());
  } else if (!sh.g_idx.empty()) {
    g_idx = calib::int4_array(q, quant::PartRole::kGroupIndex);
  }
  return model::int4_linear(c.scheme, n, k, calib::int4_array(q, quant::PartRole::kCodes), std::move(zeros),
                            calib::int4_array(q, quant::PartRole::kScale), std::move(g_idx));
}

// Every Linear of every layer (not embeddings / lm_head) replaced by its INT4 form.
void quantize_layers_int4(model::Model& m, const Int4Case& c) {
  auto swap = [&](model::RankLinear& l) {
    if (l.present()) l.weight = int4_of(*l.weight, c);
  };
  for (uint64_t i = 0; i < m.layers().size(); ++i) {
    model::Layer& L = m.mutable_layer(i);
    for (auto& a : L.attention)
      for (model::RankLinear* l : {&a.q, &a.k, &a.v, &a.qkv, &a.o}) swap(*l);
    for (auto& p : L.mlp)
      for (model::RankLinear* l : {&p.gate, &p.up, &p.gate_up, &p.down}) swap(*l);
  }
}

// Each path of DeviceLinear / linear_skinny on `w` against model::linear_forward (double) for
// 1..12 rows of seeded activations.
void expect_linear_paths_match(const model::LinearWeights& w, const std::string& what) {
  const uint64_t n = w.out_features(), k = w.in_features();
  cuda::DeviceLinear d(w, {});
  cuda::Stream stream = cuda::new_stream();
  cuda::BlasHandle blas;
  CKPT_CUBLAS(cublasCreate(blas.out()));
  CKPT_CUBLAS(cublasSetStream(blas, stream));
  cuda::DeviceBuffer scratch(n * k * sizeof(float));
  const cuda::LinearContext ctx{stream, blas, scratch.as<float>(), n * k};
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (uint64_t rows : {1, 2, 3, 8, 12}) {
    std::vector<float> x(rows * k);
    for (float& v : x) v = normal(rng);
    const std::vector<double> xd(x.begin(), x.end());
    std::vector<double> want(rows * n);
    model::linear_forward(w, xd.data(), rows, want.data());
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    cuda::DeviceBuffer dx(x.size() * sizeof(float)), dy(rows * n * sizeof(float));
    CKPT_CUDA(cudaMemcpy(dx.data(), x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
    // `accumulate`: y starts at 1 and must end at 1 + x W^T; else it starts as NaNs (unwritten shows).
    auto check = [&](const char* path, bool accumulate, const std::function<void()>& run) {
      std::vector<float> y(rows * n, accumulate ? 1.0f : NAN);
      CKPT_CUDA(cudaMemcpyAsync(dy.data(), y.data(), y.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
      run();
      CKPT_CUDA(cudaMemcpyAsync(y.data(), dy.data(), y.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
      CKPT_CUDA(cudaStreamSynchronize(stream));
      double err = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        const double expect = want[i] + (accumulate ? 1.0 : 0.0);
        err = std::isfinite(y[i]) ? std::max(err, std::fabs(y[i] - expect)) : INFINITY;
      }
      EXPECT_LE(err, 1e-5 * (scale + 1)) << what << " (" << d.device_format() << "), " << rows << " rows, " << path
                                         << (accumulate ? ", accumulating" : "");
    };
    for (bool acc : {false, true}) {
      check("dequantize + cuBLAS", acc, [&] { d.apply(dx.as<float>(), rows, dy.as<float>(), ctx, acc, true); });
      if (rows > cuda::kSkinnyMaxRows) continue;
      check("skinny", acc, [&] { d.apply(dx.as<float>(), rows, dy.as<float>(), ctx, acc); });
      check("skinny element-wise", acc, [&] {
        CKPT_CUDA(cuda::linear_skinny(d.view(), dx.as<float>(), rows, dy.as<float>(), nullptr, acc, stream, true));
      });
    }
  }
}

bool no_gpu() { return cuda::device_count() == 0; }

// DeviceLinear::apply_same_input on Linears sharing K, 1..8 rows: each output equals its own
// apply() bit for bit when all share one format (one launch of the same kernel), and the CPU
// reference within the tolerance always (mixed formats take the element-wise kernel).
void expect_same_input_matches(const std::vector<std::shared_ptr<const model::LinearWeights>>& ws, const std::string& what) {
  const uint64_t k = ws[0]->in_features();
  std::vector<cuda::DeviceLinear> d;
  bool same = true;
  for (const auto& w : ws) {
    d.emplace_back(*w, std::vector<double>{});
    same = same && d.back().view().elem == d.front().view().elem;
  }
  cuda::Stream stream = cuda::new_stream();
  const cuda::LinearContext ctx{stream, nullptr, nullptr, 0};
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (uint64_t rows : {1, 3, 8}) {
    std::vector<float> x(rows * k);
    for (float& v : x) v = normal(rng);
    cuda::DeviceBuffer dx(x.size() * sizeof(float));
    CKPT_CUDA(cudaMemcpy(dx.data(), x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
    std::vector<cuda::DeviceBuffer> alone, together;
    std::vector<std::pair<const cuda::DeviceLinear*, float*>> outs;
    for (const auto& l : d) {
      alone.emplace_back(rows * l.n() * sizeof(float));
      together.emplace_back(rows * l.n() * sizeof(float));
      l.apply(dx.as<float>(), rows, alone.back().as<float>(), ctx);
      outs.push_back({&l, together.back().as<float>()});
    }
    cuda::DeviceLinear::apply_same_input(outs, dx.as<float>(), rows, ctx);
    CKPT_CUDA(cudaStreamSynchronize(stream));
    for (size_t i = 0; i < d.size(); ++i) {
      const uint64_t n = d[i].n();
      std::vector<float> a(rows * n), b(rows * n);
      CKPT_CUDA(cudaMemcpy(a.data(), alone[i].data(), a.size() * sizeof(float), cudaMemcpyDeviceToHost));
      CKPT_CUDA(cudaMemcpy(b.data(), together[i].data(), b.size() * sizeof(float), cudaMemcpyDeviceToHost));
      std::vector<double> want(rows * n);
      const std::vector<double> xd(x.begin(), x.end());
      model::linear_forward(*ws[i], xd.data(), rows, want.data());
      double scale = 0, err = 0;
      for (double v : want) scale = std::max(scale, std::fabs(v));
      for (size_t j = 0; j < b.size(); ++j) err = std::max(err, std::fabs(b[j] - want[j]));
      EXPECT_LE(err, 1e-5 * (scale + 1)) << what << " Linear " << i << ", " << rows << " rows";
      if (same) {
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what << " Linear " << i;
      }
    }
  }
}

}  // namespace

TEST(GpuForward, MatchesTheCpuReferenceOnEveryDenseArchitecture) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  for (const char* dir : {"llama", "llama-tied", "mistral", "qwen2", "qwen3", "phi3"})
    expect_matches_cpu(test::testdata(dir), 2, 9);
  expect_matches_cpu(test::testdata("llama-trained"), 2, 64);
}

TEST(GpuForward, ShardedAndFp8OutputsMatchTheirCpuForward) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  test::ScratchDir s;
  std::string log;
  for (const std::string& args : {"shard --tp 2 " + test::testdata("qwen2") + " " + (s / "tp2"),
                                  "shard --tp 1 --pp 2 " + test::testdata("llama") + " " + (s / "pp2"),
                                  "quantize --fp8 --scheme block --block 32x32 " + test::testdata("llama") + " " + (s / "fp8")})
    ASSERT_EQ(test::run_command(test::ckpt_binary() + " " + args + " -q", &log), 0) << log;
  for (const char* d : {"tp2", "pp2", "fp8"}) expect_matches_cpu(s / d, 2, 9);
}

// 1100 positions: three chunks of the attention kernel (512 positions each) for the last rows,
// the online softmax carried across them; and the same with a sliding window of 600 (mistral's
// config with the window set), which starts inside a chunk.
TEST(GpuForward, AttentionOverSeveralChunksMatchesTheCpuReference) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  expect_matches_cpu(test::testdata("llama"), 1, 1100);
  test::ScratchDir s;
  const std::string dir = s / "mistral-window";
  std::filesystem::copy(test::testdata("mistral"), dir);
  std::ifstream in(dir + "/config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const std::string off = "\"sliding_window\": null";
  const size_t at = config.find(off);
  ASSERT_NE(at, std::string::npos) << "testdata/mistral/config.json: no sliding_window to set";
  config.replace(at, off.size(), "\"sliding_window\": 600");
  std::ofstream(dir + "/config.json") << config;
  auto m = model::Model::open(dir);
  ASSERT_EQ(m->config().sliding_window[0], 600u);
  expect_model_matches_cpu(*m, "mistral, window 600", 1, 1100);
}

TEST(GpuForward, PrefillThenDecodeEqualsOnePass) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  auto m = model::Model::open(test::testdata("qwen3"));
  const uint64_t V = m->config().vocab;
  model::TokenIds ids = model::seeded_token_ids(V, 2, 6, 3);
  cuda::GpuForward whole(*m, 2, 6), steps(*m, 2, 6);
  const std::vector<double> a = whole.forward(ids.ids, 6);
  std::vector<int64_t> prefix;
  for (uint64_t s = 0; s < 2; ++s) prefix.insert(prefix.end(), ids.row(s), ids.row(s) + 5);
  steps.forward(prefix, 5);
  const std::vector<double> last = steps.forward({ids.row(0)[5], ids.row(1)[5]}, 1);
  for (uint64_t s = 0; s < 2; ++s)
    for (uint64_t v = 0; v < V; ++v) EXPECT_NEAR(last[s * V + v], a[(s * 6 + 5) * V + v], 1e-4 * range_of(a));
}

TEST(GpuForward, MoeModelsMatchTheCpuReference) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  for (const char* dir : {"mixtral", "qwen3-moe"}) expect_matches_cpu(test::testdata(dir), 2, 9);
  test::ScratchDir s;
  std::string log;
  ASSERT_EQ(test::run_command(test::ckpt_binary() + " shard --tp 2 --ep " + test::testdata("mixtral") + " " + (s / "ep") + " -q", &log), 0) << log;
  expect_matches_cpu(s / "ep", 2, 9);
}

TEST(GpuForward, DecodeStepsReplayedFromTheGraphEqualTheEagerSteps) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  for (const char* dir : {"llama", "mistral", "qwen2", "qwen3", "phi3"}) {
    auto m = model::Model::open(test::testdata(dir));
    cuda::GpuForward probe(*m, 1, 1);
    EXPECT_EQ(probe.graph_unsupported(), "") << dir;
    expect_graph_decode_equals_eager(*m, dir);
  }
  test::ScratchDir s;
  std::string log;
  ASSERT_EQ(test::run_command(test::ckpt_binary() + " shard --tp 2 " + test::testdata("qwen2") + " " + (s / "tp2") + " -q", &log), 0) << log;
  expect_graph_decode_equals_eager(*model::Model::open(s / "tp2"), "qwen2 tp2");
  // MoE: said plainly, and decode() still steps (eagerly).
  auto moe = model::Model::open(test::testdata("mixtral"));
  cuda::GpuForward probe(*moe, 1, 1);
  EXPECT_NE(probe.graph_unsupported(), "");
  expect_graph_decode_equals_eager(*moe, "mixtral");
}

namespace {

// Sees every activation and does nothing with it (an observer is shown the Linears' outputs, so
// the step it watches runs them unfused; layer() does anyway).
struct NullObserver : cuda::DeviceActivationObserver {
  void on(uint64_t, const std::string&, const float*, uint64_t, uint64_t, cudaStream_t) override {}
};

// A prefill of 4 tokens, then 3 decode steps of 2 sequences two ways: decode() (one rank, no
// observer: the RMSNorms folded into the q/k/v, gate/up and lm_head GEMVs, SiLU * up into gate/up)
// and the step in pieces (layer(), an observer on every layer: rms_norm_rows, the unfused GEMVs,
// silu_mul). Each within the tolerance of the CPU reference and of the other. `kernels_a_layer`
// (0: not checked): the graph's kernel nodes a layer where every Linear takes the fused launch,
// so that a step that silently fell back to the unfused kernels shows.
void expect_fused_decode_matches_unfused(const model::Model& m, const std::string& what, uint64_t kernels_a_layer) {
  TwoForwardsAfterPrefill run(m, 19);
  cuda::GpuForward &fused = run.a, &unfused = run.b;
  const uint64_t B = run.B, V = m.config().vocab, L = m.layers().size();
  NullObserver obs;
  for (uint64_t t = run.prefix; t < run.prefix + run.steps; ++t) {
    const std::vector<int64_t> step = run.step(t);
    const std::vector<double> a = fused.decode(step), want = run.cpu.forward(step, 1);
    cuda::DeviceBuffer hid = unfused.embed(step);
    for (uint64_t i = 0; i < L; ++i) unfused.layer(i, hid.as<float>(), 1, &obs);
    unfused.commit(1);
    const std::vector<float> bf = unfused.logits(hid.as<float>(), B);
    const std::vector<double> b(bf.begin(), bf.end());
    ASSERT_EQ(a.size(), B * V);
    ASSERT_EQ(b.size(), B * V);
    const double tol = 1e-4 * range_of(want);
    EXPECT_LE(max_abs_diff(a, want), tol) << what << ": fused decode step at position " << t;
    EXPECT_LE(max_abs_diff(b, want), tol) << what << ": unfused (observed) step at position " << t;
    EXPECT_LE(max_abs_diff(a, b), tol) << what << ": fused and unfused steps apart at position " << t;
  }
  if (kernels_a_layer) {
    ASSERT_TRUE(fused.graph_stats(B)) << what;
    // memset of the hidden state, the embedding, the layers, lm_head with the final norm folded in.
    EXPECT_EQ(fused.graph_stats(B)->nodes, 3 + kernels_a_layer * L) << what << ": a norm or SiLU kernel left in the step";
  }
}

}  // namespace

// The fused decode step (RMSNorm into the GEMV after it, SiLU * up into gate/up) against the
// unfused one and the CPU reference: separate q/k/v and gate/up (llama, mistral), biases (qwen2),
// Qwen3's q/k norms (two kernels a layer more), fused qkv and gate_up (phi3, gate_up split in
// halves). FP8 (per tensor / channel / block) and INT4 (16-byte loads, and act-order, which the
// skinny kernel reads element by element) are never fused, so decode() runs the unfused kernels
// for them: still the same logits (kernel count not checked).
TEST(GpuForward, FusedDecodeStepMatchesTheUnfusedStep) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  // q/k/v, KV write, attention, o_proj, gate/up (+ SiLU), down_proj.
  for (const auto& [dir, kernels] : std::vector<std::pair<const char*, uint64_t>>{
           {"llama", 6}, {"mistral", 6}, {"qwen2", 6}, {"qwen3", 8}, {"phi3", 6}, {"llama-trained", 6}})
    expect_fused_decode_matches_unfused(*model::Model::open(test::testdata(dir)), dir, kernels);
  test::ScratchDir s;
  std::string log;
  for (const auto& [name, scheme] : std::vector<std::pair<std::string, std::string>>{
           {"tensor", "tensor"}, {"channel", "channel"}, {"block32", "block --block 32x32"}}) {
    ASSERT_EQ(test::run_command(test::ckpt_binary() + " quantize --fp8 --scheme " + scheme + " " +
                                    test::testdata("llama-trained") + " " + (s / name) + " -q", &log),
              0)
        << log;
    expect_fused_decode_matches_unfused(*model::Model::open(s / name), "fp8 " + name, 0);  // FP8 is not fused
  }
  const std::vector<Int4Case> cases = int4_cases();
  for (const Int4Case* c : {&cases[0], &cases[4], &cases[3]}) {
    auto m = model::Model::open(test::testdata("llama-trained"));
    quantize_layers_int4(*m, *c);
    expect_fused_decode_matches_unfused(*m, c->name, 0);  // INT4 is not fused: the same kernels
  }
}

TEST(GpuForward, EveryLinearPathMatchesTheCpuReference) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  test::ScratchDir s;
  std::string log;
  std::vector<std::string> dirs = {test::testdata("llama"), test::testdata("llama-f32"), test::testdata("phi3")};
  // Block 16x8: blocks narrower than one 16-byte load of FP8 codes (the element-wise kernel).
  const std::vector<std::pair<std::string, std::string>> fp8 = {
      {"tensor", "tensor"}, {"channel", "channel"}, {"block32", "block --block 32x32"}, {"block16x8", "block --block 16x8"}};
  for (const auto& [name, scheme] : fp8) {
    ASSERT_EQ(test::run_command(test::ckpt_binary() + " quantize --fp8 --scheme " + scheme + " " + test::testdata("llama") +
                                    " " + (s / name) + " -q", &log),
              0)
        << log;
    dirs.push_back(s / name);
  }
  for (const std::string& dir : dirs) {
    auto m = model::Model::open(dir);
    const model::Layer& L = m->layers()[0];
    for (const model::RankLinear* l : {&L.attention[0].q, &L.attention[0].k, &L.attention[0].qkv, &L.attention[0].o,
                                       &L.mlp[0].gate, &L.mlp[0].gate_up, &L.mlp[0].down})
      if (l->present()) expect_linear_paths_match(*l->weight, dir + " " + l->module);
    expect_linear_paths_match(*m->lm_head()[0].table, dir + " lm_head");
  }
  auto m = model::Model::open(test::testdata("llama"));
  const std::vector<Int4Case> cases = int4_cases();
  for (const Int4Case& c : cases)
    for (const model::RankLinear* l : {&m->layers()[0].attention[0].k, &m->layers()[0].mlp[0].down})
      expect_linear_paths_match(*int4_of(*l->weight, c), std::string(c.name) + " " + l->module);

  const model::RankAttention& a = m->layers()[0].attention[0];
  expect_same_input_matches({a.q.weight, a.k.weight, a.v.weight}, "bf16 q/k/v");
  expect_same_input_matches({int4_of(*a.q.weight, cases[0]), int4_of(*a.k.weight, cases[4])}, "int4 q/k");
  expect_same_input_matches({a.q.weight, int4_of(*a.k.weight, cases[0]), int4_of(*a.v.weight, cases[2])}, "mixed q/k/v");

  // The cases above reach the kernel they were meant for: 16-byte loads where a load holds whole
  // FP8 blocks / INT4 groups and no act-order g_idx; element by element otherwise.
  auto vectorized = [](const model::LinearWeights& w) {
    cuda::DeviceLinear d(w, {});
    cuda::DeviceBuffer x(d.k() * sizeof(float));
    return cuda::skinny_vectorized(d.view(), x.as<float>());
  };
  const model::LinearWeights& q = *m->layers()[0].attention[0].q.weight;
  EXPECT_TRUE(vectorized(q)) << "bf16";
  EXPECT_TRUE(vectorized(*model::Model::open(s / "block32")->layers()[0].attention[0].q.weight)) << "fp8 block 32x32";
  EXPECT_FALSE(vectorized(*model::Model::open(s / "block16x8")->layers()[0].attention[0].q.weight)) << "fp8 block 16x8";
  EXPECT_TRUE(vectorized(*int4_of(q, cases[0]))) << cases[0].name;
  EXPECT_FALSE(vectorized(*int4_of(q, cases[2]))) << cases[2].name;
  EXPECT_FALSE(vectorized(*int4_of(q, cases[3]))) << cases[3].name;
}

namespace {

// A weight of random stored bytes on the device, as linear_skinny sees it, and its values as the
// CPU reference dequantizes them (double).
struct SyntheticLinear {
  cuda::DeviceBuffer data, scale, zero;
  cuda::LinearView view;
  std::vector<double> values;  // [n][k]
};

// The element types the skinny kernel fuses the norm and SiLU into (skinny_fusable).
std::vector<std::pair<cuda::WeightElem, cuda::ScaleKind>> fused_formats() {
  using E = cuda::WeightElem;
  using K = cuda::ScaleKind;
  return {{E::kF32, K::kNone}, {E::kF16, K::kNone}, {E::kBF16, K::kNone}};
}

// Those and FP8 in its three scale layouts: the skinny kernel's 16-bit, f32 and FP8 tiles.
std::vector<std::pair<cuda::WeightElem, cuda::ScaleKind>> float_and_fp8_formats() {
  using E = cuda::WeightElem;
  using K = cuda::ScaleKind;
  std::vector<std::pair<E, K>> out = fused_formats();
  out.insert(out.end(), {{E::kE4M3, K::kTensor}, {E::kE4M3, K::kChannel}, {E::kE4M3, K::kBlock}});
  return out;
}

// Elements in one 16-byte load of the skinny kernel.
uint64_t elements_per_load(cuda::WeightElem e) {
  using E = cuda::WeightElem;
  return e == E::kF32 ? 4 : e == E::kE4M3 ? 16 : e == E::kInt4 ? 32 : 8;
}

// elem with, for FP8, a scale layout (block: 32 x 32) and, for INT4, groups of 64.
SyntheticLinear synthetic_linear(cuda::WeightElem elem, cuda::ScaleKind kind, uint64_t n, uint64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  SyntheticLinear s;
  cuda::LinearView& v = s.view;
  v.elem = elem;
  v.n = n;
  v.k = k;
  s.values.resize(n * k);
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  std::vector<uint8_t> zeros;
  switch (elem) {
    case cuda::WeightElem::kF32: {
      v.row_bytes = k * 4;
      bytes.resize(n * v.row_bytes);
      for (uint64_t i = 0; i < n * k; ++i) {
        const float f = normal(rng);
        std::memcpy(&bytes[i * 4], &f, 4);
        s.values[i] = f;
      }
      break;
    }
    case cuda::WeightElem::kF16:
    case cuda::WeightElem::kBF16: {
      v.row_bytes = k * 2;
      bytes.resize(n * v.row_bytes);
      for (uint64_t i = 0; i < n * k; ++i) {
        const float f = normal(rng);
        const uint16_t h = elem == cuda::WeightElem::kF16 ? ops::f32_to_f16(f) : ops::f32_to_bf16(f);
        std::memcpy(&bytes[i * 2], &h, 2);
        s.values[i] = elem == cuda::WeightElem::kF16 ? ops::f16_to_f32(h) : ops::bf16_to_f32(h);
      }
      break;
    }
    case cuda::WeightElem::kE4M3: {
      v.row_bytes = k;
      v.scale_kind = kind;
      v.block_n = v.block_k = 32;
      const uint64_t count = kind == cuda::ScaleKind::kTensor ? 1 : kind == cuda::ScaleKind::kChannel ? n
                                                                    : (n + 31) / 32 * ((k + 31) / 32);
      for (uint64_t i = 0; i < count; ++i) scales.push_back(std::ldexp(1.0f + std::fabs(normal(rng)), -9));
      bytes.resize(n * k);
      for (uint64_t r = 0; r < n; ++r)
        for (uint64_t c = 0; c < k; ++c) {
          uint8_t b = static_cast<uint8_t>(rng());
          if ((b & 0x7F) == 0x7F) b ^= 1;  // every code but NaN: subnormals, zeros, +-448
          bytes[r * k + c] = b;
          const uint64_t si = kind == cuda::ScaleKind::kTensor ? 0 : kind == cuda::ScaleKind::kChannel ? r
                                                                     : r / 32 * ((k + 31) / 32) + c / 32;
          s.values[r * k + c] = double(ops::e4m3fn_to_f32(b)) * scales[si];
        }
      break;
    }
    case cuda::WeightElem::kInt4: {
      v.row_bytes = (k + 31) / 32 * 16;
      v.group = 64;
      v.groups = (k + 63) / 64;
      for (uint64_t i = 0; i < n * v.groups; ++i) {
        scales.push_back(std::ldexp(1.0f + std::fabs(normal(rng)), -6));
        zeros.push_back(static_cast<uint8_t>(rng() % 17));  // GPTQ v1 zeros read back as 16
      }
      bytes.assign(n * v.row_bytes, 0);
      for (uint64_t r = 0; r < n; ++r)
        for (uint64_t c = 0; c < k; ++c) {
          const uint32_t q = rng() % 16;
          bytes[r * v.row_bytes + c / 2] |= static_cast<uint8_t>(q << (4 * (c % 2)));
          const uint64_t g = r * v.groups + c / 64;
          s.values[r * k + c] = ops::int4_dequant(q, zeros[g], scales[g]);
        }
      break;
    }
  }
  s.data = cuda::DeviceBuffer(bytes.size());
  CKPT_CUDA(cudaMemcpy(s.data.data(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  v.w = s.data.data();
  if (!scales.empty()) {
    s.scale = cuda::DeviceBuffer(scales.size() * sizeof(float));
    CKPT_CUDA(cudaMemcpy(s.scale.data(), scales.data(), scales.size() * sizeof(float), cudaMemcpyHostToDevice));
    (elem == cuda::WeightElem::kInt4 ? v.group_scale : v.scale) = s.scale.as<float>();
  }
  if (!zeros.empty()) {
    s.zero = cuda::DeviceBuffer(zeros.size());
    CKPT_CUDA(cudaMemcpy(s.zero.data(), zeros.data(), zeros.size(), cudaMemcpyHostToDevice));
    v.group_zero = s.zero.data();
  }
  return s;
}

const char* elem_name(cuda::WeightElem e, cuda::ScaleKind kind) {
  switch (e) {
    case cuda::WeightElem::kF32: return "f32";
    case cuda::WeightElem::kF16: return "f16";
    case cuda::WeightElem::kBF16: return "bf16";
    case cuda::WeightElem::kInt4: return "int4 g64";
    case cuda::WeightElem::kE4M3:
      return kind == cuda::ScaleKind::kTensor ? "fp8 tensor" : kind == cuda::ScaleKind::kChannel ? "fp8 channel" : "fp8 block 32x32";
  }
  return "?";
}

// y (rows [m][n], then one guard row that must stay untouched) from a run of linear_skinny(_jobs).
std::vector<float> run_rows(uint64_t m, uint64_t n, bool accumulate, cudaStream_t stream,
                            const std::function<void(float*)>& run) {
  std::vector<float> y((m + 1) * n, accumulate ? 1.0f : NAN);
  for (uint64_t j = 0; j < n; ++j) y[m * n + j] = -7.0f;
  cuda::DeviceBuffer dy(y.size() * sizeof(float));
  CKPT_CUDA(cudaMemcpyAsync(dy.data(), y.data(), y.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
  run(dy.as<float>());
  CKPT_CUDA(cudaMemcpyAsync(y.data(), dy.data(), y.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CKPT_CUDA(cudaStreamSynchronize(stream));
  return y;
}

}  // namespace

// The decode kernel's tiles on random stored bytes of every element type and FP8 scale layout,
// against the dequantized values multiplied in double, for m = 1 .. 8 and shapes on the edges of
// its decomposition: n below the SM count and not a multiple of the tile's rows; k of a few 16-byte
// loads (row groups of 32 threads, several groups a block), a number of loads that is no multiple
// of the group width (some threads one load fewer), and long rows (several loads a thread: the
// double-buffered loop). Each output within 1e-5 of the sum of |w x| over its row (float32
// accumulation); the rows past m untouched; the element-wise kernel too; fused jobs equal to the
// single launches bit for bit, and a second run equal to the first.
TEST(GpuForward, SkinnyTilesMatchTheReferenceAtEveryRowCountAndShape) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  // {n, k in 16-byte loads}: 8 loads (groups of 32 threads, 8 groups a block); 75 (groups of 64,
  // 11 threads with two loads); 200 (groups of 128, 72 threads with two); 300 (one group of 256,
  // 44 threads with two); 1100 (4-5 loads a thread).
  const std::vector<std::pair<uint64_t, uint64_t>> shapes = {{37, 8}, {5, 75}, {130, 200}, {9, 300}, {3, 1100}};
  cuda::Stream stream = cuda::new_stream();
  std::mt19937 rng(21);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  uint32_t seed = 1;
  for (const auto& [elem, kind] : float_and_fp8_formats()) {
    const uint64_t per_load = elements_per_load(elem);
    for (const auto& [n, loads] : shapes) {
      const uint64_t k = loads * per_load;
      SyntheticLinear w = synthetic_linear(elem, kind, n, k, seed++);
      std::vector<float> bias(n);
      for (float& b : bias) b = normal(rng);
      cuda::DeviceBuffer dbias(n * sizeof(float));
      CKPT_CUDA(cudaMemcpy(dbias.data(), bias.data(), n * sizeof(float), cudaMemcpyHostToDevice));
      for (uint64_t m = 1; m <= cuda::kSkinnyMaxRows; ++m) {
        std::vector<float> x(m * k);
        for (float& v : x) v = normal(rng);
        cuda::DeviceBuffer dx(x.size() * sizeof(float));
        CKPT_CUDA(cudaMemcpy(dx.data(), x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
        ASSERT_TRUE(cuda::skinny_vectorized(w.view, dx.as<float>())) << elem_name(elem, kind);
        std::vector<double> want(m * n), bound(m * n);
        for (uint64_t i = 0; i < m; ++i)
          for (uint64_t r = 0; r < n; ++r) {
            double sum = 0, abs = 0;
            for (uint64_t c = 0; c < k; ++c) {
              sum += w.values[r * k + c] * x[i * k + c];
              abs += std::fabs(w.values[r * k + c] * x[i * k + c]);
            }
            want[i * n + r] = sum;
            bound[i * n + r] = 1e-5 * (abs + std::fabs(bias[r]) + 1.0);
          }
        for (bool element_wise : {false, true})
          for (bool accumulate : {false, true}) {
            const float* b = accumulate ? nullptr : dbias.as<float>();  // bias on the plain runs
            const std::vector<float> y = run_rows(m, n, accumulate, stream, [&](float* dy) {
              CKPT_CUDA(cuda::linear_skinny(w.view, dx.as<float>(), m, dy, b, accumulate, stream, element_wise));
            });
            double worst = 0;
            for (uint64_t i = 0; i < m * n; ++i) {
              const double expect = want[i] + (accumulate ? 1.0 : bias[i % n]);
              const double err = std::isfinite(y[i]) ? std::fabs(y[i] - expect) / bound[i] : INFINITY;
              worst = std::max(worst, err);
            }
            bool guard = true;
            for (uint64_t j = 0; j < n; ++j) guard = guard && y[m * n + j] == -7.0f;
            const std::string what = std::string(elem_name(elem, kind)) + " n " + std::to_string(n) + " k " +
                                     std::to_string(k) + " m " + std::to_string(m) +
                                     (element_wise ? " element-wise" : "") + (accumulate ? " accumulating" : "");
            EXPECT_LE(worst, 1.0) << what << ": error over the float32 bound";
            EXPECT_TRUE(guard) << what << ": wrote past row m";
          }
      }
    }
    // Fused jobs (n 37, 5, 130 on one k, as q / k / v) equal their single launches, twice.
    const uint64_t k = 300 * per_load;
    std::vector<SyntheticLinear> ws;
    for (uint64_t n : {37, 5, 130}) ws.push_back(synthetic_linear(elem, kind, n, k, seed++));
    for (uint64_t m : {1, 3, 8}) {
      std::vector<float> x(m * k);
      for (float& v : x) v = normal(rng);
      cuda::DeviceBuffer dx(x.size() * sizeof(float));
      CKPT_CUDA(cudaMemcpy(dx.data(), x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
      std::vector<cuda::DeviceBuffer> ys;
      std::vector<cuda::SkinnyJob> jobs;
      for (const SyntheticLinear& s : ws) {
        ys.emplace_back(m * s.view.n * sizeof(float));
        jobs.push_back({s.view, ys.back().as<float>(), nullptr});
      }
      std::vector<std::vector<float>> first;
      for (int run = 0; run < 2; ++run) {
        CKPT_CUDA(cuda::linear_skinny_jobs(jobs.data(), 3, dx.as<float>(), m, false, stream));
        CKPT_CUDA(cudaStreamSynchronize(stream));
        for (size_t j = 0; j < ws.size(); ++j) {
          const uint64_t n = ws[j].view.n;
          std::vector<float> fused(m * n);
          CKPT_CUDA(cudaMemcpy(fused.data(), ys[j].data(), fused.size() * sizeof(float), cudaMemcpyDeviceToHost));
          const std::vector<float> alone = run_rows(m, n, false, stream, [&](float* dy) {
            CKPT_CUDA(cuda::linear_skinny(ws[j].view, dx.as<float>(), m, dy, nullptr, false, stream));
          });
          EXPECT_EQ(std::memcmp(fused.data(), alone.data(), fused.size() * sizeof(float)), 0)
              << elem_name(elem, kind) << " job " << j << ", m " << m << ": fused launch differs from its own";
          if (run == 0) first.push_back(fused);
          else
            EXPECT_EQ(std::memcmp(fused.data(), first[j].data(), fused.size() * sizeof(float)), 0)
                << elem_name(elem, kind) << " job " << j << ", m " << m << ": second run differs";
        }
      }
    }
  }
}

namespace {

std::vector<float> download(const cuda::DeviceBuffer& b, uint64_t count) {
  std::vector<float> v(count);
  CKPT_CUDA(cudaMemcpy(v.data(), b.data(), count * sizeof(float), cudaMemcpyDeviceToHost));
  return v;
}

cuda::DeviceBuffer upload(const std::vector<float>& v) {
  cuda::DeviceBuffer b(std::max<size_t>(v.size(), 1) * sizeof(float));
  CKPT_CUDA(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return b;
}

}  // namespace

// The decode GEMV with the RMSNorm folded in (SkinnyFusion::norm) and with SiLU(gate) * up in its
// epilogue (silu_pairs), on random stored bytes of every element type it takes (f32, f16, bf16), for
// m = 1 .. 8 on the skinny shapes' edges: the normed outputs within linear_skinny's float32 bound
// of W (g x / rms(x)) + b in double, and of the unfused kernels (rms_norm_rows, then
// linear_skinny); each job of a two-job normed launch bit-equal to its own launch (the sum of
// squares does not depend on the grid); the pairs' activations bit-equal to silu_mul of that
// launch's gate and up, and to a second run; rows past m untouched.
TEST(GpuForward, SkinnyFusionsMatchTheUnfusedKernels) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  using E = cuda::WeightElem;
  using K = cuda::ScaleKind;
  const std::vector<std::pair<uint64_t, uint64_t>> shapes = {{37, 8}, {5, 75}, {130, 200}, {3, 1100}};
  const float eps = 1e-5f;
  cuda::Stream stream = cuda::new_stream();
  std::mt19937 rng(33);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  uint32_t seed = 100;
  for (const auto& [elem, kind] : fused_formats()) {
    const uint64_t per_load = elements_per_load(elem);
    for (const auto& [n, loads] : shapes) {
      const uint64_t k = loads * per_load;
      const SyntheticLinear gate = synthetic_linear(elem, kind, n, k, seed++), up = synthetic_linear(elem, kind, n, k, seed++);
      std::vector<float> bg(n), bu(n), g(k);
      for (float& b : bg) b = normal(rng);
      for (float& b : bu) b = normal(rng);
      for (float& v : g) v = 1.0f + 0.5f * normal(rng);
      const cuda::DeviceBuffer dbg = upload(bg), dbu = upload(bu), dg = upload(g);
      for (uint64_t m = 1; m <= cuda::kSkinnyMaxRows; ++m) {
        std::vector<float> h(m * k);
        for (float& v : h) v = 3.0f * normal(rng);  // a residual stream: not unit RMS
        const cuda::DeviceBuffer dh = upload(h);
        const std::string what = std::string(elem_name(elem, kind)) + " n " + std::to_string(n) + " k " +
                                 std::to_string(k) + " m " + std::to_string(m);
        // The reference: gate's outputs on the normed rows, in double, and their float32 bound.
        std::vector<double> want(m * n), bound(m * n);
        for (uint64_t i = 0; i < m; ++i) {
          double ss = 0;
          for (uint64_t c = 0; c < k; ++c) ss += double(h[i * k + c]) * h[i * k + c];
          const double inv = 1.0 / std::sqrt(ss / double(k) + eps);
          for (uint64_t r = 0; r < n; ++r) {
            double sum = 0, abs = 0;
            for (uint64_t c = 0; c < k; ++c) {
              const double p = gate.values[r * k + c] * (double(g[c]) * h[i * k + c] * inv);
              sum += p;
              abs += std::fabs(p);
            }
            want[i * n + r] = sum + bg[r];
            bound[i * n + r] = 1e-5 * (abs + std::fabs(bg[r]) + 1.0);
          }
        }
        const cuda::SkinnyFusion norm{dg.as<float>(), eps, false}, pairs{dg.as<float>(), eps, true};
        cuda::SkinnyJob job{gate.view, nullptr, dbg.as<float>()};
        ASSERT_TRUE(cuda::skinny_fusable(&job, 1, dh.as<float>(), norm)) << what;
        const std::vector<float> fused = run_rows(m, n, false, stream, [&](float* dy) {
          job.y = dy;
          CKPT_CUDA(cuda::linear_skinny_fused(&job, 1, dh.as<float>(), m, norm, stream));
        });
        cuda::DeviceBuffer dx(m * k * sizeof(float));
        const std::vector<float> unfused = run_rows(m, n, false, stream, [&](float* dy) {
          CKPT_CUDA(cuda::rms_norm_rows(dh.as<float>(), m, k, dg.as<float>(), eps, dx.as<float>(), stream));
          CKPT_CUDA(cuda::linear_skinny(gate.view, dx.as<float>(), m, dy, dbg.as<float>(), false, stream));
        });
        double worst = 0, apart = 0;
        for (uint64_t i = 0; i < m * n; ++i) {
          worst = std::max(worst, std::isfinite(fused[i]) ? std::fabs(fused[i] - want[i]) / bound[i] : INFINITY);
          apart = std::max(apart, std::fabs(double(fused[i]) - unfused[i]) / (2 * bound[i]));
        }
        bool guard = true;
        for (uint64_t j = 0; j < n; ++j) guard = guard && fused[m * n + j] == -7.0f;
        EXPECT_LE(worst, 1.0) << what << ": normed output over the float32 bound";
        EXPECT_LE(apart, 1.0) << what << ": normed output apart from rms_norm_rows + linear_skinny";
        EXPECT_TRUE(guard) << what << ": normed launch wrote past row m";

        // gate and up normed in one launch (without pairs), then silu_mul; the pairs' launch twice.
        cuda::DeviceBuffer yg(m * n * sizeof(float)), yu(m * n * sizeof(float)), ref(m * n * sizeof(float));
        const cuda::SkinnyJob two[2] = {{gate.view, yg.as<float>(), dbg.as<float>()}, {up.view, yu.as<float>(), dbu.as<float>()}};
        CKPT_CUDA(cuda::linear_skinny_fused(two, 2, dh.as<float>(), m, norm, stream));
        CKPT_CUDA(cuda::silu_mul(yg.as<float>(), n, 0, yu.as<float>(), n, 0, m, n, ref.as<float>(), stream));
        CKPT_CUDA(cudaStreamSynchronize(stream));
        const std::vector<float> gate_alone(fused.begin(), fused.begin() + m * n);
        EXPECT_EQ(download(yg, m * n), gate_alone) << what << ": gate in a two-job launch differs from its own launch";
        const std::vector<float> want_act = download(ref, m * n);
        ASSERT_TRUE(cuda::skinny_fusable(two, 2, dh.as<float>(), pairs)) << what;
        for (int run = 0; run < 2; ++run) {
          const std::vector<float> act = run_rows(m, n, false, stream, [&](float* dy) {
            cuda::SkinnyJob pj[2] = {{gate.view, dy, dbg.as<float>()}, {up.view, nullptr, dbu.as<float>()}};
            CKPT_CUDA(cuda::linear_skinny_fused(pj, 2, dh.as<float>(), m, pairs, stream));
          });
          EXPECT_EQ(std::memcmp(act.data(), want_act.data(), m * n * sizeof(float)), 0)
              << what << " run " << run << ": silu pairs differ from silu_mul of the normed gate and up";
          bool g2 = true;
          for (uint64_t j = 0; j < n; ++j) g2 = g2 && act[m * n + j] == -7.0f;
          EXPECT_TRUE(g2) << what << ": pairs wrote past row m";
        }
      }
    }
  }
  // Not fusable: pairs without the norm, or of two shapes; an element-wise layout; FP8 and INT4
  // (measured slower fused: skinny_fusable). The caller runs the unfused kernels.
  const SyntheticLinear a = synthetic_linear(E::kBF16, K::kNone, 16, 64, 1), b = synthetic_linear(E::kBF16, K::kNone, 8, 64, 2);
  cuda::DeviceBuffer x(2 * 64 * sizeof(float)), g(64 * sizeof(float)), y(16 * sizeof(float));
  const cuda::SkinnyJob ab[2] = {{a.view, y.as<float>(), nullptr}, {b.view, nullptr, nullptr}};
  const cuda::SkinnyJob aa[2] = {{a.view, y.as<float>(), nullptr}, {a.view, nullptr, nullptr}};
  EXPECT_TRUE(cuda::skinny_fusable(aa, 2, x.as<float>(), {g.as<float>(), 1e-5f, true}));
  EXPECT_FALSE(cuda::skinny_fusable(aa, 2, x.as<float>(), {nullptr, 0.0f, true}));
  EXPECT_FALSE(cuda::skinny_fusable(ab, 2, x.as<float>(), {g.as<float>(), 1e-5f, true}));
  EXPECT_FALSE(cuda::skinny_fusable(aa, 1, x.as<float>() + 1, {g.as<float>(), 1e-5f, false})) << "unaligned x";
  const SyntheticLinear q = synthetic_linear(E::kInt4, K::kNone, 16, 128, 3);
  const cuda::SkinnyJob qq[2] = {{q.view, y.as<float>(), nullptr}, {q.view, nullptr, nullptr}};
  EXPECT_TRUE(cuda::skinny_vectorized(q.view, x.as<float>())) << "INT4 takes the unfused 16-byte kernel";
  EXPECT_FALSE(cuda::skinny_fusable(qq, 1, x.as<float>(), {g.as<float>(), 1e-5f, false})) << "INT4 normed";
  EXPECT_FALSE(cuda::skinny_fusable(qq, 2, x.as<float>(), {g.as<float>(), 1e-5f, true})) << "INT4 pairs";
  const SyntheticLinear f = synthetic_linear(E::kE4M3, K::kTensor, 16, 128, 4);
  const cuda::SkinnyJob ff[2] = {{f.view, y.as<float>(), nullptr}, {f.view, nullptr, nullptr}};
  EXPECT_TRUE(cuda::skinny_vectorized(f.view, x.as<float>())) << "FP8 takes the unfused 16-byte kernel";
  EXPECT_FALSE(cuda::skinny_fusable(ff, 1, x.as<float>(), {g.as<float>(), 1e-5f, false})) << "FP8 normed";
  EXPECT_FALSE(cuda::skinny_fusable(ff, 2, x.as<float>(), {g.as<float>(), 1e-5f, true})) << "FP8 pairs";
}

TEST(GpuForward, Fp8AndInt4ModelsMatchTheCpuReferenceEagerAndGraphed) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  test::ScratchDir s;
  std::string log;
  for (const char* scheme : {"tensor", "channel"}) {
    const std::string out = s / scheme;
    ASSERT_EQ(test::run_command(test::ckpt_binary() + " quantize --fp8 --scheme " + scheme + " " + test::testdata("llama-trained") + " " + out + " -q", &log), 0) << log;
    auto m = model::Model::open(out);
    expect_model_matches_cpu(*m, out, 2, 16);
    expect_graph_decode_equals_eager(*m, out);
  }
  for (const Int4Case& c : int4_cases()) {
    auto m = model::Model::open(test::testdata("llama-trained"));
    quantize_layers_int4(*m, c);
    expect_model_matches_cpu(*m, c.name, 2, 16);
    expect_graph_decode_equals_eager(*m, c.name);
  }
}

// A decode step of b < batch sequences (warm-up's graph per batch size) equals the step of a model
// built for b, eager and graphed, and a graph stays valid after graphs of other sizes are captured.
TEST(GpuForward, DecodeAtEveryBatchSizeSharesOneCache) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  for (const char* dir : {"llama", "qwen3", "phi3"}) {
    auto m = model::Model::open(test::testdata(dir));
    cuda::GpuForward g(*m, 4, 8);
    std::map<uint64_t, std::vector<double>> first;
    for (uint64_t b : {4, 1, 2}) {
      const std::vector<int64_t> ids = model::seeded_token_ids(m->config().vocab, b, 1, 3).ids;
      g.reset();
      const std::vector<double> eager = g.decode(ids, false);
      g.reset();
      const std::vector<double> graphed = g.decode(ids);
      ASSERT_TRUE(g.graph_stats(b)) << dir << " batch " << b;
      EXPECT_GT(g.graph_stats(b)->nodes, 0u);
      cuda::GpuForward alone(*m, b, 8);
      const std::vector<double> want = alone.forward(ids, 1);
      ASSERT_EQ(eager.size(), b * m->config().vocab);
      EXPECT_EQ(max_abs_diff(eager, want), 0.0) << dir << " batch " << b << ": eager step differs from a batch-" << b << " model";
      EXPECT_EQ(max_abs_diff(graphed, want), 0.0) << dir << " batch " << b << ": graph replay differs";
      first[b] = graphed;
    }
    g.reset();
    const std::vector<int64_t> ids4 = model::seeded_token_ids(m->config().vocab, 4, 1, 3).ids;
    EXPECT_EQ(max_abs_diff(g.decode(ids4), first[4]), 0.0) << dir << ": the batch-4 graph after the others were captured";
  }
}

namespace {

// Marlin vs its source layout: the Marlin GEMM rounds activations, weights and outputs to the
// scales' 16-bit type (f16: 2^-11 relative each, bf16: 2^-8), the source layout computes in
// float32. That rounding emulated in the CPU reference on llama-trained (16 tokens) moved the
// logits by at most 8.5e-4 of their range with f16 scales (gptq, awq) and 8.5e-3 with bf16
// (compressed-tensors): the bounds keep a 3x margin or more; a misplaced tile moves them by far more.
constexpr double kMarlinTolerance = 1e-2;

struct MarlinCase {
  const char* format;
  bool sym;
  int64_t group;
  bool bf16;  // compressed-tensors keeps the weight's dtype (bf16) for its scales
};

std::vector<MarlinCase> marlin_cases() {
  return {{"gptq", true, 128, false}, {"gptq", false, -1, false}, {"awq", false, 32, false},
          {"compressed-tensors", false, 64, true}, {"compressed-tensors", true, -1, true}};
}

// The trained model's INT4 in its source layout (`q`) and in the Marlin layout (`m`): the CPU
// reference reads both to the same numbers (the Marlin arrays undone exactly), and the CUDA
// forward of the Marlin checkpoint (every Linear through the Marlin GEMM) gives the logits of the
// source layout's CUDA forward within kMarlinTolerance of their range; its decode steps replayed
// from the graph equal its eager steps bit for bit.
void expect_marlin_matches_source(const std::string& q_dir, const std::string& m_dir, const std::string& what, bool bf16) {
  auto q = model::Model::open(q_dir);
  auto mm = model::Model::open(m_dir);
  const uint64_t B = 2, T = 16;
  model::TokenIds ids = model::seeded_token_ids(q->config().vocab, B, T, 7);
  model::CpuForward cpu_q(*q, B, T), cpu_m(*mm, B, T);
  EXPECT_EQ(max_abs_diff(cpu_q.forward(ids.ids, T), cpu_m.forward(ids.ids, T)), 0.0) << what << ": CPU reference";
  cuda::GpuForward gpu_q(*q, B, T), gpu_m(*mm, B, T);
  const std::vector<double> want = gpu_q.forward(ids.ids, T), got = gpu_m.forward(ids.ids, T);
  ASSERT_EQ(got.size(), want.size());
  const double tol = (bf16 ? 3 : 1) * kMarlinTolerance * range_of(want);
  EXPECT_LE(max_abs_diff(got, want), tol) << what << ": prefill logits (range " << range_of(want) << ")";
  // Decode: graph replay bit-equal to the eager step, both near the source layout's step.
  cuda::GpuForward graphed(*mm, B, T + 3), eager(*mm, B, T + 3), source(*q, B, T + 3);
  graphed.forward(ids.ids, T);
  eager.forward(ids.ids, T);
  source.forward(ids.ids, T);
  for (int step = 0; step < 3; ++step) {
    const std::vector<int64_t> next = {int64_t(11 + step), int64_t(23 + step)};
    const std::vector<double> a = graphed.decode(next), b = eager.decode(next, false), r = source.decode(next, false);
    EXPECT_EQ(max_abs_diff(a, b), 0.0) << what << ": graph replay differs from the eager step " << step;
    EXPECT_LE(max_abs_diff(a, r), tol) << what << ": decode step " << step;
  }
}

// Each Marlin Linear of `m_dir` (with a bias, accumulating or not) against the CPU reference of the
// same weights at 1, 3, 16 and 40 rows (one and several 16-row tiles of the Marlin GEMM).
void expect_marlin_linears_match(const std::string& m_dir, const std::string& what, bool bf16) {
  int sm = 0;
  CKPT_CUDA(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, 0));
  auto mm = model::Model::open(m_dir);
  const model::Layer& L = mm->layers()[1];
  for (const model::RankLinear* l : {&L.attention[0].q, &L.attention[0].k, &L.mlp[0].gate, &L.mlp[0].down}) {
    const model::LinearWeights& w = *l->weight;
    const uint64_t n = w.out_features(), k = w.in_features();
    std::vector<double> bias(n);
    for (uint64_t i = 0; i < n; ++i) bias[i] = 0.01 * double(i % 7) - 0.03;
    cuda::DeviceLinear d(w, bias);
    ASSERT_EQ(d.device_format(), "marlin") << what << " " << l->module;
    cuda::Stream stream = cuda::new_stream();
    uint64_t bytes = 0;
    for (uint64_t r = 1; r <= 40; ++r) bytes = std::max(bytes, cuda::DeviceLinear::marlin_scratch_bytes(n, k, r, sm));
    cuda::DeviceBuffer scratch(bytes);
    cuda::LinearContext ctx{stream, nullptr, nullptr, 0};
    ctx.marlin_scratch = scratch.as<uint8_t>();
    ctx.marlin_scratch_bytes = bytes;
    ctx.sm_count = sm;
    std::mt19937 rng(13);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (uint64_t rows : {1, 3, 16, 40}) {
      std::vector<float> x(rows * k);
      for (float& v : x) v = normal(rng);
      const std::vector<double> xd(x.begin(), x.end());
      std::vector<double> want(rows * n);
      model::linear_forward(w, xd.data(), rows, want.data());
      for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t j = 0; j < n; ++j) want[r * n + j] += bias[j];
      double scale = 0;
      for (double v : want) scale = std::max(scale, std::fabs(v));
      cuda::DeviceBuffer dx(x.size() * sizeof(float)), dy(rows * n * sizeof(float));
      CKPT_CUDA(cudaMemcpy(dx.data(), x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
      for (bool acc : {false, true}) {
        std::vector<float> y(rows * n, acc ? 1.0f : NAN);
        CKPT_CUDA(cudaMemcpy(dy.data(), y.data(), y.size() * sizeof(float), cudaMemcpyHostToDevice));
        d.apply(dx.as<float>(), rows, dy.as<float>(), ctx, acc);
        CKPT_CUDA(cudaStreamSynchronize(stream));
        CKPT_CUDA(cudaMemcpy(y.data(), dy.data(), y.size() * sizeof(float), cudaMemcpyDeviceToHost));
        double err = 0;
        for (size_t i = 0; i < y.size(); ++i)
          err = std::isfinite(y[i]) ? std::max(err, std::fabs(y[i] - (want[i] + (acc ? 1.0 : 0.0)))) : INFINITY;
        EXPECT_LE(err, (bf16 ? 3e-2 : 1e-2) * (scale + 1))
            << what << " " << l->module << ", " << rows << " rows" << (acc ? ", accumulating" : "");
      }
    }
  }
}

}  // namespace

TEST(GpuForward, MarlinModelMatchesItsSourceLayout) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  for (const MarlinCase& c : marlin_cases()) {
    const std::string what = std::string(c.format) + (c.sym ? " sym" : " asym") + " group " + std::to_string(c.group);
    test::ScratchDir s;
    test::write_trained_int4(s / "q", c.format, c.sym, c.group, false);
    test::write_trained_int4(s / "m", c.format, c.sym, c.group, true);
    expect_marlin_matches_source(s / "q", s / "m", what, c.bf16);
  }
  test::ScratchDir s;
  test::write_trained_gptq_act_order(s / "m", true);  // sorted g_idx and sort indices: A gathered by perm
  expect_marlin_matches_source(s / "m.gptq", s / "m", "gptq act-order", false);
}

TEST(GpuForward, MarlinLinearMatchesTheCpuReference) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA forward tests need one";
  for (const MarlinCase& c : marlin_cases()) {
    test::ScratchDir s;
    test::write_trained_int4(s / "m", c.format, c.sym, c.group, true);
    expect_marlin_linears_match(s / "m", c.format, c.bf16);
  }
  test::ScratchDir s;
  test::write_trained_gptq_act_order(s / "m", true);
  expect_marlin_linears_match(s / "m", "gptq act-order", false);
}
