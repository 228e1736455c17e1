// The GPU phases of ckpt validate on writer-made fixtures: every weight format (bf16, FP8 tensor /
// channel / block, INT4 in each format, INT4 in the Marlin layout) passes load, integrity,
// allocate, warm-up (a real decode step of the model through the runtime, per batch size) and
// graphs (that step captured and replayed, bit-equal to the eager step); TP ranks load in turn on
// one GPU and side by side on two, then run as one model; a flipped byte is named by the GPU
// checksum, a NaN weight by the decode step; a model the runtime cannot run says so and runs no
// warm-up.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "gpu_info.h"
#include "gpu_validate.h"
#include "test_support.h"
#include "validate/validate.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::test;
namespace fs = std::filesystem;

namespace {

struct Run {
  validate::Report report;
  validate::Prepared prepared;
  cuda::GpuPhasesResult gpu;
};

const std::vector<int> kBatches = {1, 4, 16};

std::unique_ptr<Run> run_all(const std::string& dir, std::vector<int> gpus = {0}) {
  auto r = std::make_unique<Run>();
  r->prepared = validate::run_cpu_phases(dir, r->report, {false, false});
  if (!r->report.ok()) return r;
  if (r->prepared.expected.files.empty()) validate::expect_file_digests(r->prepared, r->report);
  cuda::GpuValidateOptions o;
  o.batch_sizes = kBatches;
  o.gpus = std::move(gpus);
  r->gpu = cuda::run_gpu_phases(r->prepared, r->report, o);
  return r;
}

const validate::Phase* phase(const Run& r, const std::string& name, size_t nth = 0) {
  static std::vector<validate::Phase> keep;
  keep = r.report.phases();
  for (const auto& p : keep)
    if (p.name == name && nth-- == 0) return &p;
  return nullptr;
}

bool failed_with(const Run& r, const std::string& check, const std::string& tensor, const std::string& text) {
  for (const auto& f : r.report.failures())
    if (f.check == check && f.tensor == tensor && f.message.find(text) != std::string::npos) return true;
  return false;
}

// The runtime phases ran: a decode step per batch size, each captured, replayed and equal to the
// eager step; `formats` is what the allocate phase says the Linears are.
void expect_decode_warmup(const Run& r, const std::string& formats, const std::string& what) {
  ASSERT_TRUE(r.report.ok()) << what << "\n" << r.report.table();
  for (const char* name : {"load", "integrity (gpu)", "allocate", "warm-up", "graphs"})
    ASSERT_NE(phase(r, name), nullptr) << what << ": " << name;
  std::cout << r.report.table();
  EXPECT_EQ(phase(r, "allocate")->details["formats"], formats) << what;
  EXPECT_GT(phase(r, "allocate")->details["kv_cache_bytes"].get<uint64_t>(), 0u) << what;
  const ojson steps = phase(r, "warm-up")->details["steps"];
  ASSERT_EQ(steps.size(), kBatches.size()) << what;
  for (const auto& s : steps) EXPECT_EQ(s["nonfinite_logits"], 0) << what << s.dump();
  const ojson graphs = phase(r, "graphs")->details["graphs"];
  ASSERT_EQ(graphs.size(), kBatches.size()) << what;
  for (size_t i = 0; i < graphs.size(); ++i) {
    EXPECT_EQ(graphs[i]["batch"], kBatches[i]) << what;
    EXPECT_GT(graphs[i]["nodes"].get<uint64_t>(), 10u) << what << ": a decode step is more than a few kernels";
    EXPECT_EQ(graphs[i]["logits_equal_eager"], true) << what;
  }
}

// Every stored dense / FP8 weight (the [N, K] ".weight" tensors: Linears, embedding, lm_head)
// reached the runtime from the load's verified device copy, none from the host; a table the
// runtime uploads twice (tied embeddings) counts twice.
void expect_weights_from_device_copy(const Run& r, const std::string& what) {
  uint64_t weights = 0;
  for (const auto& t : r.prepared.layout.targets)
    for (const auto& x : t->ck.tensors)
      if (x.shape().size() == 2 && x.name.size() > 7 && x.name.compare(x.name.size() - 7, 7, ".weight") == 0)
        weights += x.nbytes();
  const uint64_t reused = phase(r, "allocate")->details["reused_bytes"].get<uint64_t>();
  EXPECT_GE(reused, weights) << what << ": weights uploaded from the host although the load put them on the GPU";
  EXPECT_LE(reused, 2 * weights) << what;
  EXPECT_NE(phase(r, "allocate")->summary.find("copied on the GPU from the load's verified copy"), std::string::npos)
      << phase(r, "allocate")->summary;
}

}  // namespace

TEST(GpuValidate, EveryFormatRunsRealDecodeSteps) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  const std::map<FixtureQuant, std::string> formats = {{FixtureQuant::kNone, "14 bf16"},
                                                       {FixtureQuant::kFp8Tensor, "14 fp8 per-tensor"},
                                                       {FixtureQuant::kFp8Channel, "14 fp8 per-channel"},
                                                       {FixtureQuant::kFp8Block, "14 fp8 block 32x32"}};
  for (const auto& [q, format] : formats) {
    ScratchDir tmp;
    write_fixture(tmp / "m", llama_fixture(q), llama_fixture_config(q));
    auto r = run_all(tmp / "m");
    expect_decode_warmup(*r, format, format);
    expect_weights_from_device_copy(*r, format);
  }
}

// INT4 outputs of `quantize --int4` in every format, and the trained model's INT4 in the Marlin
// layout (its Linears through the Marlin W4A16 GEMM) next to the same weights in GPTQ layout.
TEST(GpuValidate, Int4AndMarlinRunRealDecodeSteps) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  struct Case {
    const char* format;
    bool sym;
    int64_t group;
  };
  for (const Case c : {Case{"gptq", true, 32}, Case{"gptq", false, -1}, Case{"awq", false, 32},
                       Case{"compressed-tensors", true, 32}, Case{"compressed-tensors", false, -1}}) {
    ScratchDir tmp;
    write_int4_fixture(tmp / "q", c.format, c.sym, c.group);
    auto r = run_all(tmp / "q");
    expect_decode_warmup(*r, std::string("14 int4 ") + c.format, c.format);
  }
  for (const Case c : {Case{"gptq", true, 128}, Case{"gptq", false, 32}, Case{"awq", false, 64},
                       Case{"compressed-tensors", false, -1}}) {
    for (bool marlin : {false, true}) {
      ScratchDir tmp;
      write_trained_int4(tmp / "m", c.format, c.sym, c.group, marlin);
      auto r = run_all(tmp / "m");
      const std::string what = std::string("llama-trained ") + c.format + (marlin ? " marlin" : "");
      expect_decode_warmup(*r, std::string("28 int4 ") + c.format + (marlin ? " marlin" : ""), what);
    }
  }
  ScratchDir tmp;
  write_trained_gptq_act_order(tmp / "m", true);  // the GEMM gathers A by the sort indices
  auto r = run_all(tmp / "m");
  expect_decode_warmup(*r, "28 int4 gptq marlin", "llama-trained gptq act-order marlin");
}

TEST(GpuValidate, TensorParallelRanksLoadInTurnAndRunAsOneModel) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ScratchDir tmp;
  write_tp_fixture(tmp / "tp", FixtureQuant::kFp8Tensor, 2);
  auto r = run_all(tmp / "tp");
  expect_decode_warmup(*r, "28 fp8 per-tensor", "tp 2");
  EXPECT_EQ(phase(*r, "load", 0)->target, "rank-0@gpu0");
  EXPECT_EQ(phase(*r, "load", 1)->target, "rank-1@gpu0");
  EXPECT_EQ(phase(*r, "graphs")->target, "all ranks@gpu0");
  EXPECT_EQ(phase(*r, "allocate")->details["parallelism"], "tp 2");
}

TEST(GpuValidate, TensorParallelRanksLoadOnTheirOwnGpus) {
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs 2 CUDA GPUs, this machine has " << cuda::device_count();
  ScratchDir tmp;
  write_tp_fixture(tmp / "tp", FixtureQuant::kFp8Tensor, 2);
  auto r = run_all(tmp / "tp", {0, 1});
  ASSERT_TRUE(r->report.ok()) << r->report.table();
  std::set<std::string> targets;
  for (size_t rank = 0; rank < 2; ++rank) targets.insert(phase(*r, "integrity (gpu)", rank)->target);
  EXPECT_EQ(targets, (std::set<std::string>{"rank-0@gpu0", "rank-1@gpu1"})) << r->report.table();
  EXPECT_EQ(phase(*r, "graphs")->target, "all ranks@gpu0");
}

TEST(GpuValidate, CorruptionIsCaughtOnTheGpuPath) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ScratchDir tmp;
  write_fixture(tmp / "m", llama_fixture(FixtureQuant::kFp8Tensor), llama_fixture_config(FixtureQuant::kFp8Tensor));
  flip_tensor_byte(tmp / "m/model.safetensors", "model.layers.0.mlp.down_proj.weight", 4321);
  auto r = run_all(tmp / "m");
  EXPECT_TRUE(failed_with(*r, "checksum", "model.layers.0.mlp.down_proj.weight", "computed on the gpu")) << r->report.table();
  // Without a manifest the reference is the file bytes, hashed on the CPU: the GPU must agree.
  ScratchDir tmp2;
  write_fixture(tmp2 / "m", llama_fixture(FixtureQuant::kNone), llama_fixture_config(FixtureQuant::kNone));
  fs::remove(tmp2 / "m/ckpt-manifest.json");
  auto r2 = run_all(tmp2 / "m");
  EXPECT_TRUE(r2->report.ok()) << r2->report.table();
  EXPECT_EQ(phase(*r2, "integrity (gpu)")->details["reference"], "file bytes (cpu)");
}

// An E4M3 NaN code in one weight makes the decode step's logits NaN; the warm-up names the weight.
TEST(GpuValidate, NaNWeightFailsTheDecodeStep) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ScratchDir tmp;
  auto ts = llama_fixture(FixtureQuant::kFp8Block);
  for (auto& t : ts)
    if (t.name == "model.layers.1.mlp.gate_proj.weight") t.bytes[100] = 0xFF;  // E4M3 -NaN
  write_fixture(tmp / "m", ts, llama_fixture_config(FixtureQuant::kFp8Block));
  auto r = run_all(tmp / "m");
  EXPECT_TRUE(failed_with(*r, "decode", "model.layers.1.mlp.gate_proj.weight", "NaN/Inf")) << r->report.table();
}

// DeepSeek-V3 (multi-head latent attention): load and integrity run, then allocate says the
// runtime cannot compute the model, and no warm-up or graph phase stands in for it.
TEST(GpuValidate, ModelTheRuntimeCannotRunSaysSo) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  auto r = run_all(testdata("deepseek-v3"));
  ASSERT_TRUE(r->report.ok()) << r->report.table();
  ASSERT_NE(phase(*r, "integrity (gpu)"), nullptr);
  ASSERT_NE(phase(*r, "allocate"), nullptr);
  EXPECT_EQ(phase(*r, "allocate")->status, validate::PhaseStatus::kSkipped);
  EXPECT_NE(r->gpu.runtime_unsupported.find("DeepseekV3ForCausalLM"), std::string::npos) << r->gpu.runtime_unsupported;
  EXPECT_EQ(phase(*r, "warm-up"), nullptr);
  EXPECT_EQ(phase(*r, "graphs"), nullptr);
}
