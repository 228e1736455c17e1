// validate --against on the GPU (kernels/runtime/gpu_step_forward.h) against the same comparison on
// the CPU reference: one compare_models, two backends. Checked here:
//  - GpuForward's stepping API (embed / layer / commit / logits) gives forward()'s logits, and its
//    observer shows the reference observer's names in the reference's order, each activation
//    within float32 rounding of the reference's (dense, fused Phi-3, Qwen2 biases, Qwen3 q/k norm,
//    a TP-2 output, MoE);
//  - the device reduction of two activations (compare_kernels.h) equals diff_activations;
//  - compare_models on both backends agrees: top-1 / top-5 within two near-tied positions, mean KL
//    within 1e-4 + 5%, perplexities within 1e-4 relative, each Linear's relative error within 5%
//    (or both under 1e-3), the same first bad layer and Linear (and rank) on the planted faults
//    of tests/cli/test_forward.sh: a swapped pair of rows in one rank's q_proj, an FP8 scale with
//    a flipped exponent bit, an FP8 Linear left unscaled, one MoE expert's scale flipped.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>

#include "cuda_check.h"
#include "gpu_info.h"
#include "model/compare.h"
#include "model/cpu_forward.h"
#include "runtime/compare_kernels.h"
#include "runtime/gpu_forward.h"
#include "runtime/gpu_step_forward.h"
#include "test_support.h"

using namespace ckpt;

namespace {

bool no_gpu() { return cuda::device_count() == 0; }

// Edits the data of tensor `name` of a safetensors file in place: edit(bytes, row_bytes).
void edit_tensor(const std::string& file, const std::string& name, const std::function<void(uint8_t*, uint64_t)>& edit) {
  std::vector<uint8_t> b = test::read_file_bytes(file);
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  const nlohmann::json h = nlohmann::json::parse(b.begin() + 8, b.begin() + 8 + static_cast<long>(n));
  ASSERT_TRUE(h.contains(name)) << file << " has no " << name;
  const uint64_t s = h[name]["data_offsets"][0], e = h[name]["data_offsets"][1];
  const uint64_t rows = h[name]["shape"].empty() ? 1 : h[name]["shape"][0].get<uint64_t>();
  edit(b.data() + 8 + n + s, (e - s) / rows);
  test::write_file_bytes(file, b);
}

void run_ckpt(const std::string& args) {
  std::string log;
  ASSERT_EQ(test::run_command(test::ckpt_binary() + " " + args + " -q", &log), 0) << args << "\n" << log;
}

struct Both {
  model::Comparison cpu, gpu;
};

Both compare_both(const std::string& src, const std::string& dst, uint64_t sequences, uint64_t length,
                  uint64_t generate = 0) {
  auto s = model::Model::open(src);
  auto d = model::Model::open(dst);
  const model::TokenIds ids = model::seeded_token_ids(s->config().vocab, sequences, length, 1);
  model::CompareOptions o;
  o.generate = generate;
  Both r;
  r.cpu = model::compare_models(*s, *d, ids, o);
  model::ComparedForwards f = cuda::gpu_compared_forwards(*s, *d, sequences, length + generate);
  r.gpu = model::compare_models(*s, *d, ids, o, f);
  return r;
}

// `per_linear` false for MoE: where float32 and float64 routers break a near-tie differently, an
// expert has other rows on one backend and is left out of that backend's list.
void expect_agree(const Both& b, const std::string& what, bool same_generations = false, bool per_linear = true) {
  const model::Comparison &c = b.cpu, &g = b.gpu;
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(g.device, "cuda");
  ASSERT_EQ(g.positions, c.positions) << what;
  const double tie = 2.0 / static_cast<double>(c.positions) + 1e-12;  // a near-tie may flip in float32
  EXPECT_NEAR(g.top1, c.top1, tie) << what;
  EXPECT_NEAR(g.top5_overlap, c.top5_overlap, tie) << what;
  EXPECT_NEAR(g.mean_kl, c.mean_kl, 1e-4 + 0.05 * c.mean_kl) << what;
  EXPECT_NEAR(g.src_perplexity, c.src_perplexity, 1e-4 * c.src_perplexity) << what;
  EXPECT_NEAR(g.dst_perplexity, c.dst_perplexity, 1e-4 * c.dst_perplexity) << what;
  EXPECT_EQ(g.first_bad_layer, c.first_bad_layer) << what;
  EXPECT_EQ(g.first_bad_linear, c.first_bad_linear) << what;
  ASSERT_EQ(g.layers.size(), c.layers.size()) << what;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const model::LayerAgreement &lc = c.layers[i], &lg = g.layers[i];
    EXPECT_NEAR(lg.hidden_cosine, lc.hidden_cosine, 1e-3) << what << " layer " << i;
    EXPECT_NEAR(lg.isolated_cosine, lc.isolated_cosine, 1e-4) << what << " layer " << i;
    if (!per_linear) continue;
    ASSERT_EQ(lg.linears.size(), lc.linears.size()) << what << " layer " << i;
    for (size_t j = 0; j < lc.linears.size(); ++j) {
      const model::LinearAgreement &a = lc.linears[j], &x = lg.linears[j];
      EXPECT_EQ(x.name, a.name) << what << " layer " << i;
      if (a.relative_error > 1e-3) {
        EXPECT_NEAR(x.relative_error, a.relative_error, 0.05 * a.relative_error) << what << " layer " << i << " " << a.name;
      } else {
        EXPECT_LE(x.relative_error, 1e-3) << what << " layer " << i << " " << a.name;
      }
      EXPECT_NEAR(x.cosine, a.cosine, 1e-4) << what << " layer " << i << " " << a.name;
      // Where two columns differ almost equally the backends may name different ones: only the
      // located Linear's rank is compared.
      if (static_cast<int64_t>(i) == c.first_bad_layer && a.name == c.first_bad_linear) {
        EXPECT_EQ(x.worst_rank, a.worst_rank) << what << " layer " << i << " " << a.name;
      }
    }
  }
  if (same_generations) {
    EXPECT_EQ(g.src_generated, c.src_generated) << what;
    EXPECT_EQ(g.dst_generated, c.dst_generated) << what;
  }
}

// Copies each observed device activation to the host.
struct HostCopy : cuda::DeviceActivationObserver {
  std::vector<std::pair<std::string, std::vector<double>>> acts;
  void on(uint64_t, const std::string& name, const float* data, uint64_t rows, uint64_t width, cudaStream_t stream) override {
    std::vector<float> f(rows * width);
    CKPT_CUDA(cudaMemcpyAsync(f.data(), data, f.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CKPT_CUDA(cudaStreamSynchronize(stream));
    acts.emplace_back(name, std::vector<double>(f.begin(), f.end()));
  }
};

struct Recorder : model::ActivationObserver {
  std::vector<std::pair<std::string, std::vector<double>>> acts;
  void on(uint64_t, const std::string& name, const double* data, uint64_t tokens, uint64_t width) override {
    acts.emplace_back(name, std::vector<double>(data, data + tokens * width));
  }
};

// The stepping API against the reference, layer by layer, observed activations included; then,
// unobserved, against its own forward() bit for bit (an observer changes the reduction path of a
// single rank's o_proj and down_proj: float32 rounding apart).
void expect_steps_match_cpu(const std::string& path) {
  auto m = model::Model::open(path);
  const uint64_t B = 2, S = 7, V = m->config().vocab;
  const model::TokenIds ids = model::seeded_token_ids(V, B, S, 3);
  model::CpuForward cpu(*m, B, S);
  cuda::GpuForward gpu(*m, B, S), plain(*m, B, S), whole(*m, B, S);
  std::vector<double> hc = cpu.embed(ids.ids);
  cuda::DeviceBuffer hg = gpu.embed(ids.ids);
  for (uint64_t i = 0; i < m->config().layers; ++i) {
    Recorder rc;
    HostCopy rg;
    cpu.layer(i, hc, S, &rc);
    gpu.layer(i, hg.as<float>(), S, &rg);
    ASSERT_EQ(rg.acts.size(), rc.acts.size()) << path << " layer " << i;
    for (size_t j = 0; j < rc.acts.size(); ++j) {
      EXPECT_EQ(rg.acts[j].first, rc.acts[j].first) << path << " layer " << i << " activation " << j;
      const std::vector<double>&want = rc.acts[j].second, &got = rg.acts[j].second;
      ASSERT_EQ(got.size(), want.size()) << path << " layer " << i << " " << rc.acts[j].first;
      double scale = 0, err = 0;
      for (size_t k = 0; k < want.size(); ++k) scale = std::max(scale, std::fabs(want[k])), err = std::max(err, std::fabs(got[k] - want[k]));
      EXPECT_LE(err, 1e-4 * (scale + 1e-30)) << path << " layer " << i << " " << rc.acts[j].first;
    }
  }
  cpu.commit(S);
  gpu.commit(S);
  const std::vector<double> want = cpu.logits(hc);
  const std::vector<float> got = gpu.logits(hg.as<float>(), B * S);
  ASSERT_EQ(got.size(), want.size());
  auto [lo, hi] = std::minmax_element(want.begin(), want.end());
  for (size_t k = 0; k < want.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-4 * (*hi - *lo)) << path << " logit " << k;

  cuda::DeviceBuffer hp = plain.embed(ids.ids);
  for (uint64_t i = 0; i < m->config().layers; ++i) plain.layer(i, hp.as<float>(), S);
  plain.commit(S);
  const std::vector<float> stepped = plain.logits(hp.as<float>(), B * S);
  const std::vector<double> one_pass = whole.forward(ids.ids, S);
  for (size_t k = 0; k < want.size(); ++k)
    ASSERT_EQ(stepped[k], static_cast<float>(one_pass[k])) << path << ": steps differ from forward() at logit " << k;
  // The step ended: a layer without embed() is refused.
  EXPECT_THROW(plain.layer(0, hp.as<float>(), S), std::logic_error);
}

}  // namespace

TEST(GpuCompare, SteppedForwardShowsTheReferenceActivations) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the GPU comparison tests need one";
  for (const char* dir : {"llama", "mistral", "qwen2", "qwen3", "phi3", "mixtral", "qwen3-moe"})
    expect_steps_match_cpu(test::testdata(dir));
  test::ScratchDir s;
  run_ckpt("shard --tp 2 " + test::testdata("qwen2") + " " + (s / "tp2"));
  expect_steps_match_cpu(s / "tp2");
}

TEST(GpuCompare, DeviceDiffEqualsTheHostDiff) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the GPU comparison tests need one";
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  cuda::Stream stream = cuda::new_stream();
  for (auto [rows, width] : {std::pair<uint64_t, uint64_t>{1, 1}, {3, 300}, {17, 1000}, {64, 4097}}) {
    std::vector<float> a(rows * width), b(rows * width);
    for (size_t j = 0; j < a.size(); ++j) a[j] = normal(rng), b[j] = 0.7f * a[j] + 0.1f * normal(rng);
    if (rows > 1) std::fill(a.begin(), a.begin() + width, 0.0f);  // a zero row: cosine 0 against a nonzero one
    cuda::DeviceBuffer da(a.size() * 4), db(b.size() * 4), rd(rows * sizeof(cuda::RowDiff)), alpha(width * 8);
    CKPT_CUDA(cudaMemcpy(da.data(), a.data(), a.size() * 4, cudaMemcpyHostToDevice));
    CKPT_CUDA(cudaMemcpy(db.data(), b.data(), b.size() * 4, cudaMemcpyHostToDevice));
    CKPT_CUDA(cuda::column_scales(da.as<float>(), db.as<float>(), rows, width, alpha.as<double>(), stream));
    CKPT_CUDA(cuda::row_diffs(da.as<float>(), db.as<float>(), rows, width, alpha.as<double>(), rd.as<cuda::RowDiff>(), stream));
    std::vector<cuda::RowDiff> got(rows);
    CKPT_CUDA(cudaMemcpyAsync(got.data(), rd.data(), rows * sizeof(cuda::RowDiff), cudaMemcpyDeviceToHost, stream));
    CKPT_CUDA(cudaStreamSynchronize(stream));
    const std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end());
    const model::ActivationDiff want = model::diff_activations(ad.data(), bd.data(), rows, width, true);
    double dd = 0, aa = 0, scaled = 0, mx = -1, cosine = 1;
    uint64_t at = 0;
    for (uint64_t r = 0; r < rows; ++r) {
      dd += got[r].dd, aa += got[r].aa, scaled += got[r].dd_scaled;
      if (got[r].max_abs > mx) mx = got[r].max_abs, at = r * width + got[r].max_col;
      cosine = std::min(cosine, model::row_cosine(got[r].ab, got[r].aa, got[r].bb));
    }
    EXPECT_NEAR(dd, want.sum_sq_diff, 1e-9 * want.sum_sq_diff) << rows << "x" << width;
    EXPECT_NEAR(aa, want.sum_sq_ref, 1e-9 * want.sum_sq_ref + 1e-300) << rows << "x" << width;
    // (the device may fuse alpha * other - ref into one rounding: an exact fit is ~1e-33, not 0)
    EXPECT_NEAR(scaled, want.rescaled_sq_diff, 1e-9 * want.rescaled_sq_diff + 1e-20) << rows << "x" << width;
    EXPECT_EQ(mx, want.max_abs_diff) << rows << "x" << width;
    EXPECT_EQ(at, want.max_at) << rows << "x" << width;
    EXPECT_NEAR(cosine, want.min_row_cosine, 1e-12) << rows << "x" << width;
  }
}

TEST(GpuCompare, GoodOutputsAgreeWithTheCpuComparison) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the GPU comparison tests need one";
  test::ScratchDir s;
  const std::string llama = test::testdata("llama"), trained = test::testdata("llama-trained");
  run_ckpt("cast " + llama + " " + (s / "f16") + " --dtype f16");
  run_ckpt("quantize --fp8 " + llama + " " + (s / "fp8"));
  run_ckpt("shard --tp 2 " + llama + " " + (s / "tp2"));
  run_ckpt("quantize --fp8 " + test::testdata("phi3") + " " + (s / "phi3-fp8"));
  run_ckpt("quantize --fp8 " + test::testdata("qwen3") + " " + (s / "qwen3-fp8"));
  run_ckpt("quantize --fp8 " + trained + " " + (s / "trained-fp8"));
  run_ckpt("quantize " + trained + " " + (s / "trained-gptq") + " --int4 --format gptq --asym");
  expect_agree(compare_both(llama, s / "f16", 2, 16), "f16");
  expect_agree(compare_both(llama, s / "fp8", 2, 16, 4), "fp8");
  expect_agree(compare_both(test::testdata("phi3"), s / "phi3-fp8", 2, 16), "phi3 fp8 (fused qkv, gate_up)");
  expect_agree(compare_both(test::testdata("qwen3"), s / "qwen3-fp8", 2, 16), "qwen3 fp8 (q/k norm)");
  expect_agree(compare_both(trained, s / "trained-fp8", 2, 64, 4), "trained fp8", true);
  // INT4: v_proj and up_proj judged up to a positive scale a channel (the device's column scales).
  expect_agree(compare_both(trained, s / "trained-gptq", 2, 64), "trained int4");
  // The same weights re-sharded: float32 rounding stays under the floor the GPU's bound is raised to.
  const Both tp2 = compare_both(llama, s / "tp2", 2, 16);
  EXPECT_EQ(tp2.gpu.transformation, model::Transformation::kSame);
  EXPECT_EQ(tp2.gpu.first_bad_layer, -1) << "tp2 judged broken on the GPU: " << tp2.gpu.summary();
  EXPECT_TRUE(tp2.gpu.failures.empty()) << tp2.gpu.failures.front();
  EXPECT_EQ(tp2.gpu.thresholds.max_linear_error, cuda::kFloat32LinearErrorFloor);
}

TEST(GpuCompare, PlantedFaultsAreLocatedAsOnTheCpu) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine: the GPU comparison tests need one";
  test::ScratchDir s;
  const std::string llama = test::testdata("llama"), mixtral = test::testdata("mixtral");
  run_ckpt("shard --tp 2 " + llama + " " + (s / "tp2"));
  edit_tensor(s / "tp2/rank-1/model.safetensors", "model.layers.1.self_attn.q_proj.weight", [](uint8_t* p, uint64_t row) {
    std::swap_ranges(p + 3 * row, p + 4 * row, p + 9 * row);
  });
  Both b = compare_both(llama, s / "tp2", 2, 16);
  EXPECT_EQ(b.gpu.first_bad_layer, 1);
  EXPECT_EQ(b.gpu.first_bad_linear, "self_attn.q_proj");
  EXPECT_EQ(b.gpu.layers[1].linears.front().worst_rank, "rank-1");
  expect_agree(b, "tp2 with two rows of rank 1's q_proj swapped");

  run_ckpt("quantize --fp8 " + llama + " " + (s / "fp8-flip"));
  edit_tensor(s / "fp8-flip/model.safetensors", "model.layers.0.mlp.up_proj.weight_scale", [](uint8_t* p, uint64_t) { p[2] ^= 0x80; });
  b = compare_both(llama, s / "fp8-flip", 2, 16);
  EXPECT_EQ(b.gpu.first_bad_layer, 0);
  EXPECT_EQ(b.gpu.first_bad_linear, "mlp.up_proj");
  expect_agree(b, "fp8 with an exponent bit of up_proj's scale flipped");

  run_ckpt("quantize --fp8 " + llama + " " + (s / "fp8-unscaled"));
  edit_tensor(s / "fp8-unscaled/model.safetensors", "model.layers.1.self_attn.o_proj.weight_scale", [](uint8_t* p, uint64_t) {
    const float one = 1.0f;
    std::memcpy(p, &one, 4);
  });
  b = compare_both(llama, s / "fp8-unscaled", 2, 16);
  EXPECT_EQ(b.gpu.first_bad_layer, 1);
  EXPECT_EQ(b.gpu.first_bad_linear, "self_attn.o_proj");
  expect_agree(b, "fp8 with o_proj left unscaled");

  run_ckpt("quantize --fp8 " + mixtral + " " + (s / "mx8"));
  edit_tensor(s / "mx8/model.safetensors", "model.layers.1.block_sparse_moe.experts.2.w1.weight_scale",
              [](uint8_t* p, uint64_t) { p[2] ^= 0x80; });
  b = compare_both(mixtral, s / "mx8", 2, 16);
  EXPECT_EQ(b.gpu.first_bad_layer, 1);
  EXPECT_EQ(b.gpu.first_bad_linear, "block_sparse_moe.experts.2");
  expect_agree(b, "mixtral fp8 with one expert's scale flipped", false, false);
}
