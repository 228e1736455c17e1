// The CUDA forward (kernels/runtime/gpu_forward.h) against the CPU reference forward on every
// testdata architecture (MoE included), the trained Llama, an FP8 output and TP-2 / PP-2 outputs: logits
// within float32 rounding (max |delta| <= 1e-4 of the logit range), and prefill + decode through
// the GPU KV cache equal to one pass. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "gpu_info.h"
#include "model/compare.h"
#include "model/cpu_forward.h"
#include "runtime/gpu_forward.h"
#include "test_support.h"

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

void expect_matches_cpu(const std::string& path, uint64_t sequences, uint64_t length) {
  auto m = model::Model::open(path);
  model::TokenIds ids = model::seeded_token_ids(m->config().vocab, sequences, length, 7);
  model::CpuForward cpu(*m, sequences, length);
  const std::vector<double> want = cpu.forward(ids.ids, length);
  cuda::GpuForward gpu(*m, sequences, length);
  const std::vector<double> got = gpu.forward(ids.ids, length);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(max_abs_diff(got, want), 1e-4 * range_of(want)) << path;
}

bool no_gpu() { return cuda::device_count() == 0; }

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
