// quantize --int4 --pad-intermediate (issue 13): an intermediate size the group does not divide is
// refused without the flag and zero-padded with it (config.json's intermediate_size and the
// record); the padded model's CPU reference forward equals the unpadded one's bit for bit (INT4,
// and with down_proj left unquantized); `shard --tp 2` of the padded output works where the
// unpadded one is refused, and its TP forward equals the unpadded forward (to the rounding of
// the rank partials' sum).
#include <gtest/gtest.h>

#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "commands/quantize.h"
#include "commands/shard.h"
#include "core/error.h"
#include "core/file_io.h"
#include "model/cpu_forward.h"
#include "plan/executor.h"
#include "recipes/recipe.h"
#include "test_support.h"
#include "validate/validate.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::test;
namespace fs = std::filesystem;

namespace {

// The validate fixture (hidden 64, 2 layers) with MLPs of intermediate size `inter`.
void write_model(const std::string& dir, uint64_t inter) {
  std::vector<FixtureTensor> ts;
  uint64_t seed = 100;
  for (auto& t : llama_fixture(FixtureQuant::kNone)) {
    if (t.name.find(".mlp.") == std::string::npos) {
      ts.push_back(std::move(t));
      continue;
    }
    const bool down = t.name.find("down_proj") != std::string::npos;
    ts.push_back(random_tensor(t.name, DType::BF16, down ? std::vector<uint64_t>{64, inter} : std::vector<uint64_t>{inter, 64},
                               seed++));
  }
  ojson c = llama_fixture_config(FixtureQuant::kNone);
  c["intermediate_size"] = inter;
  write_fixture(dir, ts, c);
}

QuantizePlan quantize(const std::string& src, const std::string& dst, uint64_t pad_tp, std::vector<std::string> ignore = {}) {
  QuantizeOptions o;
  o.method = quant::Method::kInt4;
  o.group_size = 32;
  o.pad_intermediate_tp = pad_tp;
  o.ignore = std::move(ignore);
  const Checkpoint ck = open_checkpoint(src);
  QuantizePlan qp = plan_quantize(ck, o);
  ExecOptions eo;
  eo.protected_paths = {src};
  execute(qp.plan, dst, eo);
  return qp;
}

std::vector<double> logits_of(const std::string& dir) {
  auto m = model::Model::open(dir);
  model::CpuForward f(*m, 2, 8);
  return f.forward({1, 7, 42, 3, 200, 9, 17, 5, 255, 0, 64, 128, 31, 2, 99, 11}, 8);
}

}  // namespace

TEST(PadIntermediate, RefusedWithoutTheFlagPaddedWithIt) {
  ScratchDir tmp;
  write_model(tmp / "src", 176);
  try {
    quantize(tmp / "src", tmp / "refused", 0);
    FAIL() << "176 inputs in groups of 32 were quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in_features 176 of [64, 176] is not a multiple of the group size 32"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "refused"));
  const QuantizePlan qp = quantize(tmp / "src", tmp / "padded", 1);
  ASSERT_TRUE(qp.padding);
  EXPECT_EQ(qp.padding->to, 256u);  // lcm(32, 128)
  EXPECT_EQ(qp.padding->tensors, 6u);
  const ojson c = parse_strict_json(read_text_file(tmp / "padded/config.json")).value;
  EXPECT_EQ(c["intermediate_size"], 256);
  EXPECT_EQ(c["ckpt_intermediate_padding"]["original_intermediate_size"], 176);
  EXPECT_EQ(c["ckpt_intermediate_padding"]["multiple"], 128);
  const Checkpoint out = open_checkpoint(tmp / "padded");
  EXPECT_EQ(out.find("model.layers.0.mlp.gate_proj.qweight")->shape(), (std::vector<uint64_t>{64 / 8, 256}));
  EXPECT_EQ(out.find("model.layers.0.mlp.down_proj.qweight")->shape(), (std::vector<uint64_t>{256 / 8, 64}));
  validate::Report report;
  validate::run_cpu_phases(tmp / "padded", report, {});
  EXPECT_TRUE(report.ok()) << report.table();
}

TEST(PadIntermediate, ForwardIsExactAndTpShardingWorks) {
  ScratchDir tmp;
  write_model(tmp / "src", 160);  // 160 % 32 == 0, but a rank of tp 2 gets 80
  quantize(tmp / "src", tmp / "plain", 0);
  const QuantizePlan qp = quantize(tmp / "src", tmp / "padded", 2);
  ASSERT_TRUE(qp.padding);
  EXPECT_EQ(qp.padding->to, 256u);
  const std::vector<double> want = logits_of(tmp / "plain");
  EXPECT_EQ(logits_of(tmp / "padded"), want);

  ShardOptions so;
  so.tp = 2;
  const Checkpoint plain = open_checkpoint(tmp / "plain");
  try {
    plan_shard(plain, Recipe::for_checkpoint(plain), so);
    FAIL() << "80 inputs per rank in groups of 32 were sharded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("down_proj"), std::string::npos) << e.what();
  }
  const Checkpoint padded = open_checkpoint(tmp / "padded");
  execute(plan_shard(padded, Recipe::for_checkpoint(padded), so), tmp / "tp2", ExecOptions{});
  validate::Report report;
  validate::run_cpu_phases(tmp / "tp2", report, {});
  EXPECT_TRUE(report.ok()) << report.table();
  // The engine's TP forward sums down_proj's (and o_proj's) rank partials in rank order: the same
  // terms in another order, so equal to the last bits of a double.
  const std::vector<double> tp2 = logits_of(tmp / "tp2");
  ASSERT_EQ(tp2.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(tp2[i], want[i], 1e-12) << i;

  // down_proj left unquantized is padded all the same (zero columns copied), and still exact.
  quantize(tmp / "src", tmp / "plain-down", 0, {"*.down_proj"});
  quantize(tmp / "src", tmp / "padded-down", 2, {"*.down_proj"});
  EXPECT_EQ(open_checkpoint(tmp / "padded-down").find("model.layers.1.mlp.down_proj.weight")->shape(),
            (std::vector<uint64_t>{64, 256}));
  EXPECT_EQ(logits_of(tmp / "padded-down"), logits_of(tmp / "plain-down"));
}

TEST(PadIntermediate, WhatCannotBePaddedExactlyIsRefused) {
  ScratchDir tmp;
  write_model(tmp / "src", 160);
  const Checkpoint ck = open_checkpoint(tmp / "src");
  Checkpoint moe = ck;
  (*moe.config)["num_local_experts"] = 4;
  QuantizeOptions o;
  o.method = quant::Method::kInt4;
  o.pad_intermediate_tp = 1;
  EXPECT_THROW(plan_quantize(moe, o), Error);
  o.method = quant::Method::kFp8;
  EXPECT_THROW(plan_quantize(ck, o), Error);
  // Already a multiple: nothing changes, and the plan says so.
  write_model(tmp / "even", 256);
  o.method = quant::Method::kInt4;
  o.group_size = 32;
  const QuantizePlan qp = plan_quantize(open_checkpoint(tmp / "even"), o);
  EXPECT_FALSE(qp.padding);
  EXPECT_EQ(qp.plan.notes["intermediate_padding"]["to"], 256);
}
