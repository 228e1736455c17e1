// ckpt validate, the CPU phases: each structural rule (scales, quantization config, index, TP
// ranks), manifest checksums, dequantization and the CPU GEMM check, on fixtures written with the
// library's writer (tests/support/validate_fixtures.h).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/file_io.h"
#include "ops/fp8.h"
#include "test_support.h"
#include "validate/dequantize.h"
#include "validate/gemm_check.h"
#include "validate/validate.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::validate;
using namespace ckpt::test;
namespace fs = std::filesystem;

namespace {

using Outcome = CpuValidation;

// The one failure line of a failing run, checked to name `check` and `tensor`.
void expect_failure(const Outcome& o, const std::string& check, const std::string& tensor_part) {
  ASSERT_FALSE(o.report.ok()) << o.report.table();
  bool found = false;
  std::string all;
  for (const auto& f : o.report.failures()) {
    all += f.line() + "\n";
    found |= f.check == check && (f.tensor + " " + f.file + " " + f.message).find(tensor_part) != std::string::npos;
  }
  EXPECT_TRUE(found) << "want a '" << check << "' failure naming '" << tensor_part << "', got:\n" << all;
}

void rewrite_without(const std::string& dir, const std::string& drop) {
  // Re-writes the fixture without one tensor (and without a manifest, so the structure rules and
  // not the checksums are what catches it).
  std::vector<FixtureTensor> keep;
  for (auto& t : llama_fixture(FixtureQuant::kFp8Tensor))
    if (t.name != drop) keep.push_back(std::move(t));
  write_fixture(dir, keep, llama_fixture_config(FixtureQuant::kFp8Tensor));
  fs::remove(dir + "/ckpt-manifest.json");
}

}  // namespace

TEST(ValidateCpu, EveryFormatPasses) {
  for (auto q : {FixtureQuant::kNone, FixtureQuant::kFp8Tensor, FixtureQuant::kFp8Channel, FixtureQuant::kFp8Block}) {
    ScratchDir tmp;
    write_fixture(tmp / "m", llama_fixture(q), llama_fixture_config(q));
    auto o = run_cpu(tmp / "m");
    EXPECT_TRUE(o->report.ok()) << o->report.table();
    const Target& t = *o->prepared.layout.targets.at(0);
    EXPECT_EQ(t.linears.size(), 15u);  // 7 per layer + lm_head
    EXPECT_EQ(t.linear_source, "recipe llama");
    size_t fp8 = 0;
    for (const auto& lw : t.linears) fp8 += lw.fp8();
    EXPECT_EQ(fp8, q == FixtureQuant::kNone ? 0u : 14u);
    std::vector<std::string> names;
    for (const auto& p : o->report.phases()) names.push_back(p.name);
    EXPECT_EQ(names, (std::vector<std::string>{"structure", "manifest", "checksums (cpu)", "gemm (cpu)"}));
  }
}

TEST(ValidateCpu, ScaleLayoutsAreRead) {
  ScratchDir tmp;
  write_fixture(tmp / "b", llama_fixture(FixtureQuant::kFp8Block), llama_fixture_config(FixtureQuant::kFp8Block));
  auto o = run_cpu(tmp / "b");
  const Target& t = *o->prepared.layout.targets.at(0);
  const LinearWeight* down = nullptr;
  for (const auto& lw : t.linears)
    if (lw.name == "model.layers.0.mlp.down_proj.weight") down = &lw;
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->format(), "fp8 block 32x32");
  EXPECT_EQ(down->scale->name, "model.layers.0.mlp.down_proj.weight_scale_inv");
  // dequantize_rows against plain arithmetic: element (r, c) times scale (r/32, c/32).
  std::vector<uint8_t> w = read_file_bytes(tmp / "b/model.safetensors");
  std::vector<uint8_t> sbytes(w.begin() + down->scale->view.offset, w.begin() + down->scale->view.offset + down->scale->nbytes());
  std::vector<double> scales = decode_all(DType::F32, sbytes.data(), 2 * 4);
  std::vector<double> row(down->k);
  const uint64_t r = 37;
  dequantize_rows(*down, w.data() + down->weight->view.offset, scales, r, 1, row.data());
  for (uint64_t c = 0; c < down->k; c += 13) {
    double q = ops::e4m3fn_to_f32(w[down->weight->view.offset + r * down->k + c]);
    EXPECT_EQ(row[c], q * scales[(r / 32) * 4 + c / 32]) << c;
  }
}

TEST(ValidateCpu, MissingScaleIsNamed) {
  ScratchDir tmp;
  rewrite_without(tmp / "m", "model.layers.1.self_attn.v_proj.weight_scale");
  expect_failure(*run_cpu(tmp / "m"), "scale", "model.layers.1.self_attn.v_proj.weight");
}

TEST(ValidateCpu, MissingTensorIsNamed) {
  ScratchDir tmp;
  write_tp_fixture(tmp / "tp", FixtureQuant::kNone, 2);
  // rank-1 loses a tensor rank-0 has: caught by the rank agreement and by the manifest.
  auto ts = llama_fixture(FixtureQuant::kNone, 2);
  ts.erase(std::remove_if(ts.begin(), ts.end(), [](auto& t) { return t.name == "model.layers.0.mlp.up_proj.weight"; }), ts.end());
  fs::remove(tmp / "tp/rank-1/model.safetensors");
  write_fixture(tmp / "r1", ts, llama_fixture_config(FixtureQuant::kNone), {{"format", "pt"}, {"tp_size", "2"}, {"tp_rank", "1"}});
  fs::rename(tmp / "r1/model.safetensors", tmp / "tp/rank-1/model.safetensors");
  auto o = run_cpu(tmp / "tp");
  expect_failure(*o, "tp-agreement", "model.layers.0.mlp.up_proj.weight");
}

TEST(ValidateCpu, WrongScaleShapeAndOrphanScale) {
  ScratchDir tmp;
  auto ts = llama_fixture(FixtureQuant::kFp8Block);
  for (auto& t : ts)
    if (t.name == "model.layers.0.self_attn.q_proj.weight_scale_inv") t = float_tensor(t.name, DType::F32, {1, 1}, {0.001f});
  ts.push_back(float_tensor("model.layers.0.mlp.extra.weight_scale_inv", DType::F32, {1, 1}, {1.0f}));
  write_fixture(tmp / "m", ts, llama_fixture_config(FixtureQuant::kFp8Block));
  auto o = run_cpu(tmp / "m");
  expect_failure(*o, "scale", "model.layers.0.self_attn.q_proj.weight_scale_inv");
  expect_failure(*o, "scale", "model.layers.0.mlp.extra.weight_scale_inv");
}

TEST(ValidateCpu, QuantConfigMustMatchTensors) {
  ScratchDir tmp;
  // FP8 weights, no quantization_config.
  write_fixture(tmp / "a", llama_fixture(FixtureQuant::kFp8Tensor), llama_fixture_config(FixtureQuant::kNone));
  expect_failure(*run_cpu(tmp / "a"), "quant-config", "model.layers.0.self_attn.q_proj.weight");
  // lm_head left out of the ignore list is fine (engines never quantize it), a down_proj is not.
  auto ts = llama_fixture(FixtureQuant::kFp8Tensor);
  ts.erase(std::remove_if(ts.begin(), ts.end(), [](auto& t) { return t.name.find("layers.1.mlp.down_proj") != std::string::npos; }), ts.end());
  ts.push_back(random_tensor("model.layers.1.mlp.down_proj.weight", DType::BF16, {64, 128}, 99));
  ojson c = llama_fixture_config(FixtureQuant::kFp8Tensor);
  c["quantization_config"]["ignored_layers"] = ojson::array();
  write_fixture(tmp / "b", ts, c);
  expect_failure(*run_cpu(tmp / "b"), "quant-config", "model.layers.1.mlp.down_proj.weight");
  c["quantization_config"]["ignored_layers"] = {"model.layers.1.mlp.down_proj"};
  write_fixture(tmp / "c", ts, c);
  EXPECT_TRUE(run_cpu(tmp / "c")->report.ok());
  // Per-channel scales under vLLM's fp8 method, which has no per-channel scale.
  write_fixture(tmp / "d", llama_fixture(FixtureQuant::kFp8Channel), llama_fixture_config(FixtureQuant::kFp8Tensor));
  expect_failure(*run_cpu(tmp / "d"), "scale", "weight_scale");
  // A method this runtime has no GEMM for.
  c["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  write_fixture(tmp / "e", llama_fixture(FixtureQuant::kNone), c);
  expect_failure(*run_cpu(tmp / "e"), "quant-config", "gptq");
}

TEST(ValidateCpu, BadScaleValuesAndNaNWeights) {
  ScratchDir tmp;
  auto ts = llama_fixture(FixtureQuant::kFp8Tensor);
  for (auto& t : ts)
    if (t.name == "model.layers.0.mlp.up_proj.weight_scale") t = float_tensor(t.name, DType::F32, {}, {0.0f});
  write_fixture(tmp / "a", ts, llama_fixture_config(FixtureQuant::kFp8Tensor));
  expect_failure(*run_cpu(tmp / "a"), "scale", "model.layers.0.mlp.up_proj.weight_scale");
  // An E4M3 NaN code inside a weight: the GEMM check finds NaN outputs.
  ts = llama_fixture(FixtureQuant::kFp8Tensor);
  for (auto& t : ts)
    if (t.name == "model.layers.1.self_attn.o_proj.weight") t.bytes[5 * 64 + 3] = 0x7F;
  write_fixture(tmp / "b", ts, llama_fixture_config(FixtureQuant::kFp8Tensor));
  expect_failure(*run_cpu(tmp / "b"), "gemm", "model.layers.1.self_attn.o_proj.weight");
}

TEST(ValidateCpu, FlippedByteIsNamedByTheChecksum) {
  ScratchDir tmp;
  write_fixture(tmp / "m", llama_fixture(FixtureQuant::kFp8Block), llama_fixture_config(FixtureQuant::kFp8Block));
  flip_tensor_byte(tmp / "m/model.safetensors", "model.layers.1.mlp.gate_proj.weight", 777);
  auto o = run_cpu(tmp / "m");
  expect_failure(*o, "checksum", "model.layers.1.mlp.gate_proj.weight");
  EXPECT_EQ(o->report.failures().size(), 1u) << o->report.table();
}

TEST(ValidateCpu, TruncatedFileIsNamed) {
  ScratchDir tmp;
  write_fixture(tmp / "m", llama_fixture(FixtureQuant::kNone), llama_fixture_config(FixtureQuant::kNone));
  fs::resize_file(tmp / "m/model.safetensors", fs::file_size(tmp / "m/model.safetensors") - 100);
  expect_failure(*run_cpu(tmp / "m"), "structure", "model.safetensors");
}

TEST(ValidateCpu, ConfigChangesAreCaught) {
  ScratchDir tmp;
  write_fixture(tmp / "m", llama_fixture(FixtureQuant::kNone), llama_fixture_config(FixtureQuant::kNone));
  ojson c = llama_fixture_config(FixtureQuant::kNone);
  c["dtype"] = "float16";
  fs::remove(tmp / "m/config.json");
  write_text_file(tmp / "m/config.json", c.dump());
  expect_failure(*run_cpu(tmp / "m"), "config", "config.json says dtype float16");
  // A consistent edit is still an edit: the manifest's digest of config.json catches it.
  c["dtype"] = "bfloat16";
  c["rope_theta"] = 1e6;
  fs::remove(tmp / "m/config.json");
  write_text_file(tmp / "m/config.json", c.dump());
  expect_failure(*run_cpu(tmp / "m"), "checksum", "config.json");
}

TEST(ValidateCpu, TensorParallelRanks) {
  ScratchDir tmp;
  for (auto q : {FixtureQuant::kNone, FixtureQuant::kFp8Channel}) {
    const std::string dir = tmp / ("tp" + std::to_string(int(q)));
    write_tp_fixture(dir, q, 2);
    auto o = run_cpu(dir);
    EXPECT_TRUE(o->report.ok()) << o->report.table();
    EXPECT_EQ(o->prepared.layout.targets.size(), 2u);
    EXPECT_EQ(o->prepared.layout.targets[1]->label, "rank-1");
  }
  // A missing rank.
  write_tp_fixture(tmp / "a", FixtureQuant::kNone, 2);
  fs::remove_all(tmp / "a/rank-1");
  expect_failure(*run_cpu(tmp / "a"), "tp-layout", "rank-1");
  // A wrong tp size in one rank's config.
  write_tp_fixture(tmp / "b", FixtureQuant::kNone, 2);
  StrictJsonResult r = parse_strict_json(read_text_file(tmp / "b/rank-1/config.json"));
  r.value["ckpt_parallel"]["tp_size"] = 4;
  fs::remove(tmp / "b/rank-1/config.json");
  write_text_file(tmp / "b/rank-1/config.json", r.value.dump());
  expect_failure(*run_cpu(tmp / "b"), "tp-layout", "tp_size 4");
  // A rank whose file metadata names another rank (copied over from rank-0).
  write_tp_fixture(tmp / "c", FixtureQuant::kNone, 2);
  fs::remove(tmp / "c/rank-1/model.safetensors");
  fs::copy_file(tmp / "c/rank-0/model.safetensors", tmp / "c/rank-1/model.safetensors");
  expect_failure(*run_cpu(tmp / "c"), "tp-layout", "tp_size/tp_rank");
  // Ranks of another tp degree disagree on shapes.
  write_tp_fixture(tmp / "d", FixtureQuant::kNone, 2);
  fs::remove(tmp / "d/rank-1/model.safetensors");
  write_fixture(tmp / "d1", llama_fixture(FixtureQuant::kNone, 1), llama_fixture_config(FixtureQuant::kNone),
                {{"format", "pt"}, {"tp_size", "2"}, {"tp_rank", "1"}});
  fs::rename(tmp / "d1/model.safetensors", tmp / "d/rank-1/model.safetensors");
  expect_failure(*run_cpu(tmp / "d"), "tp-agreement", "model.layers.0.self_attn.q_proj.weight");
}

TEST(ValidateCpu, StrayShardOutsideTheIndex) {
  ScratchDir tmp;
  write_fixture(tmp / "m", llama_fixture(FixtureQuant::kNone), llama_fixture_config(FixtureQuant::kNone));
  const std::string index = R"({"metadata": {"total_size": 1}, "weight_map": {})";
  std::vector<FixtureTensor> ts = llama_fixture(FixtureQuant::kNone);
  ojson wm = ojson::object();
  for (const auto& t : ts) wm[t.name] = "model.safetensors";
  write_text_file(tmp / "m/model.safetensors.index.json", ojson({{"metadata", {{"total_size", 1}}}, {"weight_map", wm}}).dump());
  fs::copy_file(tmp / "m/model.safetensors", tmp / "m/model-old.safetensors");
  expect_failure(*run_cpu(tmp / "m"), "index", "model-old.safetensors");
}

TEST(ValidateCpu, GemmJudgement) {
  GemmStats s;
  s.add(1.0, 1.0);
  s.add(-2.01, -2.0);
  EXPECT_NEAR(s.relative_error(), 0.005, 1e-12);
  EXPECT_EQ(judge(s, relative_tolerance(DType::BF16, false)), "");
  EXPECT_NE(judge(s, relative_tolerance(DType::F32, false)), "");
  s.add(NAN, 1.0);
  EXPECT_NE(judge(s, 1.0).find("NaN/Inf"), std::string::npos);
  GemmStats zero;
  zero.add(0, 0);
  EXPECT_EQ(zero.relative_error(), 0.0);
  zero.add(1e-3, 0);
  EXPECT_TRUE(std::isinf(zero.relative_error()));
}

TEST(ValidateCpu, ReportTableAndJson) {
  ScratchDir tmp;
  write_fixture(tmp / "m", llama_fixture(FixtureQuant::kNone), llama_fixture_config(FixtureQuant::kNone));
  auto o = run_cpu(tmp / "m");
  ojson j = o->report.to_json();
  EXPECT_TRUE(j["passed"].get<bool>());
  EXPECT_EQ(j["phases"].size(), 4u);
  EXPECT_EQ(j["phases"][0]["phase"], "structure");
  EXPECT_NE(o->report.table().find("gemm (cpu)"), std::string::npos);
}

// Ranks validated side by side on several GPUs overlap their phases: the total is the wall clock,
// the shares are of the phases' summed time, and the table says why the two differ.
TEST(ValidateCpu, ReportTotalIsWallClockWhenPhasesOverlap) {
  validate::Report report;
  for (const char* target : {"rank-0@gpu0", "rank-1@gpu1"}) {
    validate::Phase p;
    p.name = "load";
    p.target = target;
    p.seconds = 1.0;
    report.add_phase(p);
  }
  ojson j = report.to_json();
  EXPECT_LT(j["total_seconds"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["phase_seconds"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["phases"][1]["share"].get<double>(), 0.5);
  EXPECT_NE(report.table().find("add up to 2.000 s"), std::string::npos) << report.table();
}
