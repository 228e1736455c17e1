// The one quantization model (lib/quant/scheme.h): every config a format's tool writes reads back
// as the scheme it was written from, the tensors a quantized Linear owns follow the formats'
// layouts, and configs ckpt cannot honour are refused naming the field.
#include <gtest/gtest.h>

#include "core/error.h"
#include "quant/scheme.h"

namespace ckpt {
namespace {

using quant::Format;
using quant::Granularity;
using quant::Method;

quant::Scheme make(Method m, Format f, Granularity g, uint64_t group = 0, uint64_t bn = 0, uint64_t bk = 0,
                   bool sym = true) {
  quant::Scheme s;
  s.method = m;
  s.format = f;
  s.granularity = g;
  s.group_size = group;
  s.block_n = bn;
  s.block_k = bk;
  s.symmetric = sym;
  return s;
}

quant::Scheme round_trip(const quant::Scheme& s, const std::vector<std::string>& not_converted) {
  ojson config = {{"architectures", {"LlamaForCausalLM"}}};
  config["quantization_config"] = quant::quantization_config(s, not_converted);
  return quant::read_scheme(&config, "config.json");
}

TEST(QuantScheme, WrittenConfigsReadBackAsTheirScheme) {
  const std::vector<quant::Scheme> schemes = {
      make(Method::kFp8, Format::kFp8Native, Granularity::kTensor),
      make(Method::kFp8, Format::kFp8Native, Granularity::kBlock, 0, 128, 128),
      make(Method::kFp8, Format::kCompressedTensors, Granularity::kChannel),
      make(Method::kFp8, Format::kCompressedTensors, Granularity::kBlock, 0, 16, 16),
      make(Method::kInt4, Format::kGptq, Granularity::kGroup, 128),
      make(Method::kInt4, Format::kGptq, Granularity::kChannel),
      make(Method::kInt4, Format::kAwq, Granularity::kGroup, 64, 0, 0, false),
      make(Method::kInt4, Format::kCompressedTensors, Granularity::kGroup, 32),
      make(Method::kInt4, Format::kCompressedTensors, Granularity::kGroup, 128, 0, 0, false),
  };
  for (const auto& s : schemes) {
    quant::Scheme r = round_trip(s, {"lm_head", "model.layers.0.mlp.down_proj"});
    EXPECT_EQ(r.describe(), s.describe());
    EXPECT_EQ(r.method, s.method) << s.describe();
    EXPECT_EQ(r.format, s.format) << s.describe();
    EXPECT_EQ(r.granularity, s.granularity) << s.describe();
    EXPECT_EQ(r.group_size, s.group_size) << s.describe();
    EXPECT_EQ(r.block_n, s.block_n) << s.describe();
    EXPECT_EQ(r.symmetric, s.symmetric) << s.describe();
    EXPECT_TRUE(r.ignores("model.layers.0.mlp.down_proj")) << s.describe();
    EXPECT_FALSE(r.ignores("model.layers.1.mlp.down_proj")) << s.describe();
  }
}

TEST(QuantScheme, LinearPartsFollowTheFormats) {
  auto shapes = [](const quant::Scheme& s, uint64_t n, uint64_t k, DType wd) {
    std::string out;
    for (const auto& p : s.linear_parts(n, k, wd))
      out += p.suffix + ":" + std::string(dtype_name(p.dtype)) + shape_to_string(p.shape) + " ";
    return out;
  };
  EXPECT_EQ(shapes(make(Method::kFp8, Format::kFp8Native, Granularity::kBlock, 0, 128, 128), 300, 256, DType::BF16),
            "weight:F8_E4M3[300, 256] weight_scale_inv:F32[3, 2] ");
  EXPECT_EQ(shapes(make(Method::kFp8, Format::kCompressedTensors, Granularity::kTensor), 64, 32, DType::BF16),
            "weight:F8_E4M3[64, 32] weight_scale:BF16[1] ");
  // GPTQ: qweight [K/8, N], qzeros [K/g, N/8], scales F16 [K/g, N], g_idx [K].
  EXPECT_EQ(shapes(make(Method::kInt4, Format::kGptq, Granularity::kGroup, 128), 512, 256, DType::BF16),
            "qweight:I32[32, 512] qzeros:I32[2, 64] scales:F16[2, 512] g_idx:I32[256] ");
  // AWQ: qweight [K, N/8].
  EXPECT_EQ(shapes(make(Method::kInt4, Format::kAwq, Granularity::kGroup, 128, 0, 0, false), 512, 256, DType::BF16),
            "qweight:I32[256, 64] qzeros:I32[2, 64] scales:F16[2, 512] ");
  // compressed-tensors: weight_packed [N, K/8], scales in the weight's dtype, zeros [N/8, G].
  EXPECT_EQ(shapes(make(Method::kInt4, Format::kCompressedTensors, Granularity::kGroup, 128, 0, 0, false), 512, 256,
                   DType::BF16),
            "weight_packed:I32[512, 32] weight_scale:BF16[512, 2] weight_shape:I64[2] weight_zero_point:I32[64, 2] ");
}

TEST(QuantScheme, GptqConfigIsGptqModelsAndQuantizeConfigMatches) {
  quant::Scheme s = make(Method::kInt4, Format::kGptq, Granularity::kGroup, 128);
  ojson q = quant::quantization_config(s, {"lm_head"});
  EXPECT_EQ(q["quant_method"], "gptq");
  EXPECT_EQ(q["bits"], 4);
  EXPECT_EQ(q["group_size"], 128);
  EXPECT_EQ(q["desc_act"], false);
  EXPECT_EQ(q["sym"], true);
  EXPECT_EQ(q["checkpoint_format"], "gptq");
  EXPECT_FALSE(q.contains("dynamic"));
  EXPECT_EQ(*quant::quantize_config_file(s, {"lm_head"}), q.dump(2) + "\n");
  EXPECT_FALSE(quant::quantize_config_file(make(Method::kInt4, Format::kAwq, Granularity::kGroup, 128, 0, 0, false), {}));
}

TEST(QuantScheme, UnreadableConfigsAreRefusedNamingTheField) {
  auto refused = [](ojson qc, const std::string& part) {
    ojson config = {{"quantization_config", qc}};
    try {
      quant::read_scheme(&config, "dir/config.json");
      ADD_FAILURE() << qc.dump() << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kUnsupported);
      EXPECT_EQ(e.file(), "dir/config.json");
      EXPECT_NE(e.rule().find(part), std::string::npos) << e.rule();
    }
  };
  refused({{"bits", 4}}, "quant_method");
  refused({{"quant_method", "bitsandbytes"}}, "bitsandbytes");
  refused({{"quant_method", "gptq"}, {"bits", 8}, {"group_size", 128}}, "4-bit");
  refused({{"quant_method", "gptq"}, {"bits", 4}}, "gptq group_size");
  refused({{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"checkpoint_format", "marlin"}}, "marlin");
  refused({{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"version", "gemv"}}, "gemv");
  refused({{"quant_method", "fp8"}, {"weight_block_size", {128}}}, "weight_block_size");
  refused({{"quant_method", "compressed-tensors"}, {"format", "float-quantized"}, {"config_groups", ojson::object()}},
          "config_groups");
  // No quantization_config, or null: not quantized.
  ojson plain = {{"quantization_config", nullptr}};
  EXPECT_FALSE(quant::read_scheme(&plain, "c").quantized());
  EXPECT_FALSE(quant::read_scheme(nullptr, "c").quantized());
}

}  // namespace
}  // namespace ckpt
