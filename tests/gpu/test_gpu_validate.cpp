// The GPU phases of ckpt validate on writer-made fixtures: every weight format passes load,
// integrity, allocate, warm-up (through the GEMM path its format needs) and graphs; TP ranks run
// in turn on one GPU and side by side on two; a flipped byte is named by the GPU checksum, a NaN weight by the GEMM
// check; the dequantize kernels equal the CPU reference (INT4: ops::int4_decode, every format).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "cuda_check.h"
#include "gemm_kernels.h"
#include "gemm_warmup.h"
#include "model/linear.h"
#include "gpu_info.h"
#include "gpu_validate.h"
#include "test_support.h"
#include "validate/dequantize.h"
#include "validate/validate.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::test;
namespace fs = std::filesystem;

namespace {

struct Run {
  validate::Report report;
  validate::Prepared prepared;
};

std::unique_ptr<Run> run_all(const std::string& dir, std::vector<int> gpus = {0}) {
  auto r = std::make_unique<Run>();
  r->prepared = validate::run_cpu_phases(dir, r->report, {false, false});
  if (!r->report.ok()) return r;
  if (r->prepared.expected.files.empty()) validate::expect_file_digests(r->prepared, r->report);
  cuda::GpuValidateOptions o;
  o.batch_sizes = {1, 4, 16};
  o.gpus = std::move(gpus);
  cuda::run_gpu_phases(r->prepared, r->report, o);
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

}  // namespace

TEST(GpuValidate, EveryFormatPasses) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  for (auto q : {FixtureQuant::kNone, FixtureQuant::kFp8Tensor, FixtureQuant::kFp8Channel, FixtureQuant::kFp8Block}) {
    ScratchDir tmp;
    write_fixture(tmp / "m", llama_fixture(q), llama_fixture_config(q));
    auto r = run_all(tmp / "m");
    ASSERT_TRUE(r->report.ok()) << r->report.table();
    for (const char* name : {"load", "integrity (gpu)", "allocate", "warm-up", "graphs"})
      ASSERT_NE(phase(*r, name), nullptr) << name;
    const auto paths = phase(*r, "warm-up")->details["paths"];
    std::cout << r->report.table() << paths.dump() << "\n";
    const std::map<FixtureQuant, std::string> path = {{FixtureQuant::kNone, "bf16 via cublas"},
                                                      {FixtureQuant::kFp8Tensor, "fp8 per-tensor via cublaslt-fp8"},
                                                      {FixtureQuant::kFp8Channel, "fp8 per-channel via dequant+cublas"},
                                                      {FixtureQuant::kFp8Block, "fp8 block 32x32 via dequant+cublas"}};
    EXPECT_EQ(paths.value(path.at(q), 0), q == FixtureQuant::kNone ? 15 : 14) << paths.dump();
    EXPECT_EQ(phase(*r, "graphs")->details["graphs"].size(), 3u);
  }
}

TEST(GpuValidate, TensorParallelRanksInTurn) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ScratchDir tmp;
  write_tp_fixture(tmp / "tp", FixtureQuant::kFp8Tensor, 2);
  auto r = run_all(tmp / "tp");
  ASSERT_TRUE(r->report.ok()) << r->report.table();
  ASSERT_NE(phase(*r, "graphs", 1), nullptr);
  EXPECT_EQ(phase(*r, "graphs", 0)->target, "rank-0@gpu0");
  EXPECT_EQ(phase(*r, "graphs", 1)->target, "rank-1@gpu0");
}

TEST(GpuValidate, TensorParallelRanksOnTheirOwnGpus) {
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs 2 CUDA GPUs, this machine has " << cuda::device_count();
  ScratchDir tmp;
  write_tp_fixture(tmp / "tp", FixtureQuant::kFp8Tensor, 2);
  auto r = run_all(tmp / "tp", {0, 1});
  ASSERT_TRUE(r->report.ok()) << r->report.table();
  std::set<std::string> targets;
  for (size_t rank = 0; rank < 2; ++rank) targets.insert(phase(*r, "graphs", rank)->target);
  EXPECT_EQ(targets, (std::set<std::string>{"rank-0@gpu0", "rank-1@gpu1"})) << r->report.table();
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

TEST(GpuValidate, NaNWeightFailsTheGemmCheck) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ScratchDir tmp;
  auto ts = llama_fixture(FixtureQuant::kFp8Block);
  for (auto& t : ts)
    if (t.name == "model.layers.1.mlp.gate_proj.weight") t.bytes[100] = 0xFF;  // E4M3 -NaN
  write_fixture(tmp / "m", ts, llama_fixture_config(FixtureQuant::kFp8Block));
  auto r = run_all(tmp / "m");
  EXPECT_TRUE(failed_with(*r, "gemm", "model.layers.1.mlp.gate_proj.weight", "NaN/Inf")) << r->report.table();
}

TEST(GpuValidate, DequantizeKernelsEqualTheCpuReference) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  for (auto q : {FixtureQuant::kFp8Tensor, FixtureQuant::kFp8Channel, FixtureQuant::kFp8Block}) {
    ScratchDir tmp;
    write_fixture(tmp / "m", llama_fixture(q), llama_fixture_config(q));
    validate::Report report;
    auto p = validate::run_cpu_phases(tmp / "m", report, {false, false});
    const std::vector<uint8_t> file = read_file_bytes(tmp / "m/model.safetensors");
    cuda::DeviceBuffer dev(file.size());
    CKPT_CUDA(cudaMemcpy(dev.data(), file.data(), file.size(), cudaMemcpyHostToDevice));
    for (const auto& lw : p.layout.targets[0]->linears) {
      if (!lw.fp8()) continue;
      cuda::DequantArgs a{};
      a.weight = dev.data() + lw.weight->view.offset;
      a.weight_type = cuda::Elem::kE4M3;
      a.n = lw.n;
      a.k = lw.k;
      a.scale = dev.data() + lw.scale->view.offset;
      a.scale_type = lw.scale->dtype() == DType::F32 ? cuda::Elem::kF32 : cuda::Elem::kBF16;
      a.scale_kind = q == FixtureQuant::kFp8Tensor ? cuda::ScaleKind::kTensor
                     : q == FixtureQuant::kFp8Channel ? cuda::ScaleKind::kChannel : cuda::ScaleKind::kBlock;
      a.block_n = lw.block_n;
      a.block_k = lw.block_k;
      cuda::DeviceBuffer out(lw.n * lw.k * 8);
      CKPT_CUDA(cuda::dequantize_f64(a, out.as<double>(), 0));
      std::vector<double> gpu(lw.n * lw.k), cpu(lw.n * lw.k);
      CKPT_CUDA(cudaMemcpy(gpu.data(), out.data(), gpu.size() * 8, cudaMemcpyDeviceToHost));
      std::vector<double> scales = validate::decode_all(lw.scale->dtype(), file.data() + lw.scale->view.offset, lw.scale->view.numel());
      validate::dequantize_rows(lw, file.data() + lw.weight->view.offset, scales, 0, lw.n, cpu.data());
      ASSERT_EQ(gpu, cpu) << lw.name;
    }
  }
}

// INT4 outputs of `quantize --int4` in every format: each Linear runs dequantize (from the loaded
// bytes in the stored layout) + float32 cuBLAS, within the float32 bound of the float64 reference.
TEST(GpuValidate, Int4FormatsPass) {
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
    ASSERT_TRUE(r->report.ok()) << c.format << "\n" << r->report.table();
    const auto paths = phase(*r, "warm-up")->details["paths"];
    std::cout << r->report.table() << paths.dump() << "\n";
    EXPECT_EQ(paths.value(std::string("int4 ") + c.format + " via dequant+cublas", 0), 14) << paths.dump();
    EXPECT_EQ(paths.value("bf16 via cublas", 0), 1) << paths.dump();  // lm_head
    EXPECT_EQ(phase(*r, "graphs")->details["graphs"].size(), 3u);
  }
}

TEST(GpuValidate, Int4DequantizeKernelEqualsTheCpuDecoder) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  for (const char* format : {"gptq", "awq", "compressed-tensors"})
    for (bool sym : {true, false}) {
      if (std::string(format) == "awq" && sym) continue;
      ScratchDir tmp;
      write_int4_fixture(tmp / "q", format, sym, 32);
      validate::Report report;
      auto p = validate::run_cpu_phases(tmp / "q", report, {false, false});
      ASSERT_TRUE(report.ok()) << report.table();
      const validate::Target& t = *p.layout.targets[0];
      const std::vector<uint8_t> file = read_file_bytes(tmp / "q/model.safetensors");
      // Two bytes off 4-byte alignment (scales stay 2-aligned): the kernel reads words byte by byte.
      cuda::DeviceBuffer dev(file.size() + 2);
      CKPT_CUDA(cudaMemcpy(dev.data() + 2, file.data(), file.size(), cudaMemcpyHostToDevice));
      model::HostTensors host(t.ck);
      for (const auto& lw : t.linears) {
        if (!lw.is_int4()) continue;
        const cuda::DequantArgs a =
            cuda::dequant_args(lw, [&](const TensorRef& x) -> const void* { return dev.data() + 2 + x.view.offset; });
        cuda::DeviceBuffer out(lw.n * lw.k * 8);
        CKPT_CUDA(cuda::dequantize_f64(a, out.as<double>(), 0));
        std::vector<double> gpu(lw.n * lw.k), cpu(lw.n * lw.k);
        CKPT_CUDA(cudaMemcpy(gpu.data(), out.data(), gpu.size() * 8, cudaMemcpyDeviceToHost));
        model::stored_linear(lw, host)->dequantize_rows(0, lw.n, cpu.data());
        ASSERT_EQ(gpu, cpu) << format << " " << lw.name;
      }
    }
}
