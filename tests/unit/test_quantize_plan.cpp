// `quantize --fp8` through the whole library on the real tiny checkpoints: every scheme and format
// writes the tensors, dtypes, shapes and config each engine expects; codes and scales equal the
// scalar reference computed from the source bytes; the same bytes at any thread count; fused
// modules treated alike; routers and lm_head untouched and listed; corrupt and already-quantized
// sources refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "commands/quantize.h"
#include "core/error.h"
#include "core/file_io.h"
#include "ops/fp8_quant.h"
#include "plan/executor.h"
#include "test_support.h"

using namespace ckpt;
using test::ScratchDir;
using test::testdata;
namespace fs = std::filesystem;

namespace {

QuantizePlan run(const std::string& src, const std::string& dst, const QuantizeOptions& o, int threads = 2) {
  Checkpoint ck = open_checkpoint(src);
  QuantizePlan qp = plan_quantize(ck, o);
  ExecOptions eo;
  eo.threads = threads;
  eo.protected_paths = {src};
  execute(qp.plan, dst, eo);
  return qp;
}

std::vector<uint8_t> bytes_of(const Checkpoint& ck, const std::string& name) {
  const TensorRef* t = ck.find(name);
  if (!t) throw std::runtime_error("missing tensor " + name);
  std::vector<uint8_t> b(t->nbytes());
  File f = File::open_read(ck.files[t->view.file].path);
  if (!b.empty()) f.pread_exact(b.data(), b.size(), t->view.offset);
  return b;
}

ojson config_of(const std::string& dir) { return ojson::parse(read_text_file(dir + "/config.json")); }

struct Expect {
  quant::Granularity scheme;
  std::optional<quant::Format> format;
  const char* scale_suffix;
  bool scale_in_weight_dtype;
};

// Checks every quantized weight of `out` against the reference computed from `src`.
void check_bit_exact(const std::string& src, const std::string& out, const Expect& x, size_t expected_count) {
  Checkpoint s = open_checkpoint(src), o = open_checkpoint(out);
  size_t n = 0;
  for (const auto& t : s.tensors) {
    const TensorRef* q = o.find(t.name);
    ASSERT_NE(q, nullptr) << t.name;
    if (q->dtype() != DType::F8_E4M3) {
      EXPECT_EQ(bytes_of(o, t.name), bytes_of(s, t.name)) << t.name << " must be copied unchanged";
      continue;
    }
    ++n;
    const std::string module = t.name.substr(0, t.name.size() - 7);
    const uint64_t rows = t.shape()[0], cols = t.shape()[1];
    ops::Fp8Grid g = x.scheme == quant::Granularity::kTensor    ? ops::Fp8Grid::per_tensor(rows, cols)
                     : x.scheme == quant::Granularity::kChannel ? ops::Fp8Grid::per_channel(rows, cols)
                                                       : ops::Fp8Grid::blocks(rows, cols, 128, 128);
    const DType sdt = x.scale_in_weight_dtype ? t.dtype() : DType::F32;
    const auto in = bytes_of(s, t.name);
    std::vector<float> amax;
    ASSERT_TRUE(ops::fp8_amax_reference(g, t.dtype(), in.data(), amax));
    std::vector<float> scales;
    std::vector<uint8_t> scale_bytes(amax.size() * dtype_bits(sdt) / 8);
    for (size_t i = 0; i < amax.size(); ++i) {
      scales.push_back(ops::fp8_scale_for_amax(amax[i], sdt));
      ops::store_scale(scales.back(), sdt, scale_bytes.data() + i * dtype_bits(sdt) / 8);
    }
    std::vector<uint8_t> codes(g.numel());
    ops::fp8_quantize_reference(g, t.dtype(), in.data(), scales, codes.data());
    EXPECT_EQ(bytes_of(o, t.name), codes) << t.name;
    const TensorRef* st = o.find(module + x.scale_suffix);
    ASSERT_NE(st, nullptr) << module + x.scale_suffix;
    EXPECT_EQ(st->dtype(), sdt);
    EXPECT_EQ(bytes_of(o, st->name), scale_bytes) << st->name;
    std::vector<uint64_t> shape;
    if (x.scheme == quant::Granularity::kBlock) shape = {g.grid_rows(), g.grid_cols()};
    else if (x.scheme == quant::Granularity::kChannel) shape = {rows, 1};
    else if (x.scale_in_weight_dtype) shape = {1};
    EXPECT_EQ(st->shape(), shape) << st->name;
  }
  EXPECT_EQ(n, expected_count);
}

}  // namespace

TEST(QuantizePlan, NativePerTensorIsBitExactWithConfig) {
  ScratchDir d;
  QuantizeOptions o;
  QuantizePlan qp = run(testdata("llama"), d / "out", o);
  check_bit_exact(testdata("llama"), d / "out", {quant::Granularity::kTensor, {}, ".weight_scale", false}, 14);
  ojson q = config_of(d / "out")["quantization_config"];
  EXPECT_EQ(q["quant_method"], "fp8");
  EXPECT_EQ(q["activation_scheme"], "dynamic");
  EXPECT_FALSE(q.contains("weight_block_size"));
  EXPECT_EQ(q["ignored_layers"], ojson::array({"lm_head"}));
  ojson r = quantize_report(qp);
  EXPECT_EQ(r["tensors"].size(), 14u);
  for (const auto& t : r["tensors"]) {
    EXPECT_GT(t["relative_error"].get<double>(), 0.0);
    EXPECT_LT(t["relative_error"].get<double>(), 0.06);  // FP8 with a per-tensor scale on N(0, 0.05)
    EXPECT_TRUE(t.contains("scale"));
  }
  EXPECT_LT(r["bytes_after"].get<uint64_t>(), r["bytes_before"].get<uint64_t>());
}

TEST(QuantizePlan, NativeBlockIsBitExactWithPartialEdgeBlocks) {
  ScratchDir d;
  QuantizeOptions o;
  o.granularity = quant::Granularity::kBlock;
  run(testdata("llama"), d / "out", o);
  // llama's weights are 16..128 wide: every block is a partial edge block except 128-wide ones.
  check_bit_exact(testdata("llama"), d / "out", {quant::Granularity::kBlock, {}, ".weight_scale_inv", false}, 14);
  ojson q = config_of(d / "out")["quantization_config"];
  EXPECT_EQ(q["weight_block_size"], ojson::array({128, 128}));
  EXPECT_EQ(q["fmt"], "e4m3");
  EXPECT_EQ(q["modules_to_not_convert"], ojson::array({"lm_head"}));

  // A smaller block makes several blocks per matrix, edge blocks included (64 x 48 on 128 x 64).
  ScratchDir d2;
  o.block_rows = 48;
  o.block_cols = 40;
  Checkpoint ck = open_checkpoint(testdata("llama"));
  QuantizePlan qp = plan_quantize(ck, o);
  ExecOptions eo;
  execute(qp.plan, d2 / "out", eo);
  Checkpoint out = open_checkpoint(d2 / "out");
  const TensorRef* s = out.find("model.layers.0.mlp.gate_proj.weight_scale_inv");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->shape(), (std::vector<uint64_t>{3, 2}));  // ceil(128/48), ceil(64/40)
}

TEST(QuantizePlan, CompressedTensorsChannelIsBitExact) {
  ScratchDir d;
  QuantizeOptions o;
  o.granularity = quant::Granularity::kChannel;  // compressed-tensors by default
  run(testdata("llama"), d / "out", o);
  check_bit_exact(testdata("llama"), d / "out", {quant::Granularity::kChannel, {}, ".weight_scale", true}, 14);
  ojson q = config_of(d / "out")["quantization_config"];
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_EQ(q["format"], "float-quantized");
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["strategy"], "channel");
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["type"], "float");
  EXPECT_EQ(q["config_groups"]["group_0"]["input_activations"]["dynamic"], true);
  EXPECT_EQ(q["ignore"], ojson::array({"lm_head"}));
}

TEST(QuantizePlan, CompressedTensorsTensorAndBlockOnF32Weights) {
  for (quant::Granularity scheme : {quant::Granularity::kTensor, quant::Granularity::kBlock}) {
    ScratchDir d;
    QuantizeOptions o;
    o.granularity = scheme;
    o.format = quant::Format::kCompressedTensors;
    run(testdata("llama-f32"), d / "out", o);
    check_bit_exact(testdata("llama-f32"), d / "out", {scheme, o.format, ".weight_scale", true}, 14);
    ojson w = config_of(d / "out")["quantization_config"]["config_groups"]["group_0"]["weights"];
    EXPECT_EQ(w["strategy"], quant::granularity_name(scheme));
  }
}

TEST(QuantizePlan, SameBytesAtAnyThreadCountAcrossManyChunks) {
  // One 2050 x 1030 bf16 weight: 2.1 MB of codes, several executor chunks with a small budget.
  ScratchDir d;
  fs::create_directories(d / "src");
  std::ofstream(d / "src/config.json") << R"({"architectures": ["LlamaForCausalLM"]})";
  const uint64_t rows = 2050, cols = 1030;
  std::vector<uint8_t> data(rows * cols * 2);
  uint32_t x = 12345;
  for (size_t i = 0; i < data.size(); i += 2) {
    x = x * 1664525u + 1013904223u;
    data[i] = static_cast<uint8_t>(x >> 8);
    data[i + 1] = static_cast<uint8_t>(0x3C + ((x >> 20) & 3)) | ((x >> 31) << 7);  // |w| in [2^-7, 2^1)
  }
  test::write_raw_safetensors(d / "src/model.safetensors",
                              R"({"model.layers.0.mlp.up_proj.weight":{"dtype":"BF16","shape":[2050,1030],"data_offsets":[0,)" +
                                  std::to_string(data.size()) + "]}}",
                              data);
  for (quant::Granularity scheme : {quant::Granularity::kTensor, quant::Granularity::kBlock, quant::Granularity::kChannel}) {
    QuantizeOptions o;
    o.granularity = scheme;
    std::string a = d / ("a" + std::string(quant::granularity_name(scheme))), b = d / ("b" + std::string(quant::granularity_name(scheme)));
    std::vector<ojson> reports;
    for (auto [dst, threads] : {std::pair{a, 1}, std::pair{b, 3}}) {
      Checkpoint ck = open_checkpoint(d / "src");
      QuantizePlan qp = plan_quantize(ck, o);
      ExecOptions eo;
      eo.threads = threads;
      eo.memory_budget = 3ull << 20;  // 1 MiB chunks
      execute(qp.plan, dst, eo);
      reports.push_back(quantize_report(qp)["tensors"][0]);
    }
    EXPECT_EQ(reports[0], reports[1]) << "the error report must not depend on the thread count";
    EXPECT_EQ(test::read_file_bytes(a + "/model.safetensors"), test::read_file_bytes(b + "/model.safetensors"));
    check_bit_exact(d / "src", a, {scheme, {}, scheme == quant::Granularity::kBlock ? ".weight_scale_inv" : ".weight_scale",
                                   scheme == quant::Granularity::kChannel}, 1);
  }
}

TEST(QuantizePlan, RoutersAndLmHeadStayAndAreListed) {
  ScratchDir d;
  QuantizeOptions o;
  o.granularity = quant::Granularity::kBlock;
  QuantizePlan qp = run(testdata("qwen3-moe"), d / "out", o);
  Checkpoint out = open_checkpoint(d / "out");
  for (const auto& t : out.tensors) {
    if (t.name.find(".mlp.gate.weight") != std::string::npos || t.name == "lm_head.weight" ||
        t.name.find("norm") != std::string::npos || t.name.find("embed") != std::string::npos) {
      EXPECT_NE(t.dtype(), DType::F8_E4M3) << t.name;
    }
    if (t.name.find(".experts.") != std::string::npos && t.name.ends_with(".weight")) {
      EXPECT_EQ(t.dtype(), DType::F8_E4M3) << t.name;
    }
  }
  ojson list = config_of(d / "out")["quantization_config"]["ignored_layers"];
  EXPECT_NE(std::find(list.begin(), list.end(), "model.layers.0.mlp.gate"), list.end());
  EXPECT_NE(std::find(list.begin(), list.end(), "lm_head"), list.end());
}

TEST(QuantizePlan, IgnoringOneOfQkvLeavesTheWholeGroup) {
  ScratchDir d;
  QuantizeOptions o;
  o.ignore = {"model.layers.1.self_attn.k_proj"};
  run(testdata("llama"), d / "out", o);
  Checkpoint out = open_checkpoint(d / "out");
  for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
    EXPECT_EQ(out.find(std::string("model.layers.1.self_attn.") + p + ".weight")->dtype(), DType::BF16) << p;
    EXPECT_EQ(out.find(std::string("model.layers.0.self_attn.") + p + ".weight")->dtype(), DType::F8_E4M3) << p;
  }
  EXPECT_EQ(out.find("model.layers.1.self_attn.o_proj.weight")->dtype(), DType::F8_E4M3);
  ojson list = config_of(d / "out")["quantization_config"]["ignored_layers"];
  EXPECT_EQ(list, ojson::array({"lm_head", "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.q_proj",
                                "model.layers.1.self_attn.v_proj"}));
}

TEST(QuantizePlan, AlreadyQuantizedSourceIsCopiedOrRefused) {
  ScratchDir d;
  QuantizeOptions o;
  o.granularity = quant::Granularity::kBlock;
  run(testdata("llama"), d / "fp8", o);
  QuantizePlan again = run(d / "fp8", d / "again", o);
  EXPECT_TRUE(again.copied);
  Checkpoint a = open_checkpoint(d / "fp8"), b = open_checkpoint(d / "again");
  for (const auto& t : a.tensors) EXPECT_EQ(bytes_of(a, t.name), bytes_of(b, t.name)) << t.name;
  QuantizeOptions other;  // per-tensor: a different scheme
  Checkpoint ck = open_checkpoint(d / "fp8");
  try {
    plan_quantize(ck, other);
    FAIL() << "re-quantizing must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("already quantized (fp8 native block 128x128)"), std::string::npos) << e.what();
  }
}

TEST(QuantizePlan, NaNWeightIsAnErrorNamingTheTensorAndNothingIsWritten) {
  ScratchDir d;
  fs::create_directories(d / "src");
  std::ofstream(d / "src/config.json") << R"({"architectures": ["LlamaForCausalLM"]})";
  std::vector<uint8_t> data(4 * 2 * 3, 0);
  const uint32_t nan = 0x7FC00000u;
  std::memcpy(&data[4 * 4], &nan, 4);
  test::write_raw_safetensors(
      d / "src/model.safetensors",
      R"({"model.layers.0.mlp.down_proj.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", data);
  Checkpoint ck = open_checkpoint(d / "src");
  QuantizePlan qp = plan_quantize(ck, QuantizeOptions{});
  ExecOptions eo;
  try {
    execute(qp.plan, d / "out", eo);
    FAIL() << "a NaN weight must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kCheckFailed);
    EXPECT_EQ(e.tensor(), "model.layers.0.mlp.down_proj.weight");
  }
  EXPECT_FALSE(fs::exists(d / "out"));
}
