// `ckpt marlin` (lib/commands/marlin.h) end to end through the planner and the executor: INT4
// checkpoints written here in each source format over vLLM's test shapes (K = 128·{8,5,11},
// N = {64,256}·{4,7,13}, one Linear per shape), relaid out, and every output tensor compared with
// the independent plain re-implementation of vLLM's test reference
// (tests/reference/vllm_marlin_reference.h: marlin_weights after sort_weights,
// marlin_permute_scales, marlin_zero_points, marlin_permute_bias); then --undo must give the
// source file back byte for byte. Refusals name the tensor and the rule.
#include <gtest/gtest.h>

#include <fstream>
#include <numeric>
#include <random>

#include "commands/marlin.h"
#include "core/error.h"
#include "formats/safetensors_small.h"
#include "plan/executor.h"
#include "test_support.h"
#include "vllm_marlin_reference.h"

using namespace ckpt;
using test::ScratchDir;
namespace vllm = ckpt::test::vllm;

namespace {

struct Variant {
  std::string name;
  quant::Format format;
  int64_t group;  // -1: channelwise
  bool symmetric, act_order, gptq_v2;
};

template <typename T>
std::vector<uint8_t> le_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}
template <typename T>
std::vector<uint8_t> le_bytes_of_mat(const vllm::Mat& m) {
  std::vector<T> v(m.begin(), m.end());
  return le_bytes(v);
}

// What the test expects of one Linear, by output tensor name.
using Expected = std::map<std::string, std::vector<uint8_t>>;

quant::Scheme scheme_of(const Variant& v) {
  quant::Scheme s;
  s.method = quant::Method::kInt4;
  s.format = v.format;
  s.method_name = v.format == quant::Format::kCompressedTensors ? "compressed-tensors" : quant::format_name(v.format);
  s.granularity = v.group == -1 ? quant::Granularity::kChannel : quant::Granularity::kGroup;
  s.group_size = v.group == -1 ? 0 : static_cast<uint64_t>(v.group);
  s.symmetric = v.symmetric;
  s.act_order = v.act_order;
  s.gptq_v2 = v.gptq_v2;
  return s;
}

// Writes an INT4 checkpoint of one Linear per vLLM test shape in `dir`; fills what vLLM's
// reference makes of each tensor.
void write_checkpoint(const Variant& v, const std::string& dir, Expected& want) {
  std::vector<SmallTensor> tensors;
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(v.name)));
  const auto perm1024 = vllm::get_weight_perm();
  int layer = 0;
  for (int64_t kc : {8, 5, 11})
    for (int64_t nb : {64, 256})
      for (int64_t nc : {4, 7, 13}) {
        const int64_t K = 128 * kc, N = nb * nc, group = v.group == -1 ? K : v.group, G = K / group;
        const std::string m = "model.layers." + std::to_string(layer++) + ".mlp.down_proj";
        vllm::Mat q(static_cast<size_t>(K * N)), z(static_cast<size_t>(G * N)), s(static_cast<size_t>(G * N)), bias(static_cast<size_t>(N));
        for (auto& x : q) x = rng() & 15;
        // GPTQ v1 stores zero - 1: its zeros are 1..15.
        for (auto& x : z) x = v.symmetric ? 8 : (v.format == quant::Format::kGptq && !v.gptq_v2 ? 1 + rng() % 15 : rng() & 15);
        for (auto& x : s) x = rng() & 0x7BFF;  // f16 bit patterns (finite)
        for (auto& x : bias) x = rng() & 0x7BFF;
        // Act-order as GPTQ writes it: stored row i is input channel rand[i], g_idx[i] = rand[i] / group
        // (every group a run of `group` ties).
        std::vector<int64_t> g_idx(static_cast<size_t>(K));
        std::vector<int64_t> order(static_cast<size_t>(K));
        std::iota(order.begin(), order.end(), 0);
        if (v.act_order) std::shuffle(order.begin(), order.end(), rng);
        for (int64_t i = 0; i < K; ++i) g_idx[i] = order[i] / group;

        // Reference: vLLM sorts (sort_weights), then marlin_weights; scales, zeros, bias permuted.
        vllm::Mat q_sorted = q;
        std::vector<int64_t> g_sorted = g_idx;
        std::vector<int64_t> sort_idx;
        if (v.act_order) sort_idx = vllm::sort_weights(q_sorted, g_sorted, N);
        const bool ct = v.format == quant::Format::kCompressedTensors;
        const std::string codes = ct ? "weight_packed" : "qweight", scales = ct ? "weight_scale" : "scales",
                          zeros = ct ? "weight_zero_point" : "qzeros", gname = ct ? "weight_g_idx" : "g_idx";
        want[m + "." + codes] = le_bytes(vllm::marlin_weights(q_sorted, K, N, perm1024));
        want[m + "." + scales] = le_bytes_of_mat<uint16_t>(vllm::marlin_permute_scales(s, K, N, v.group == -1 ? -1 : group));
        want[m + ".bias"] = le_bytes_of_mat<uint16_t>(vllm::marlin_permute_scales(bias, 1 << 20, N, -1));
        if (!v.symmetric) want[m + "." + zeros] = le_bytes(vllm::marlin_zero_points(z, G, N));
        if (v.act_order) {
          want[m + "." + gname] = le_bytes_of_mat<int32_t>(g_sorted);
          want[m + ".g_idx_sort_indices"] = le_bytes_of_mat<int32_t>(sort_idx);
        }

        // The checkpoint in the source format.
        const uint64_t uK = static_cast<uint64_t>(K), uN = static_cast<uint64_t>(N), uG = static_cast<uint64_t>(G);
        tensors.push_back({m + ".bias", DType::F16, {uN}, le_bytes_of_mat<uint16_t>(bias)});
        if (v.format == quant::Format::kAwq) {
          tensors.push_back({m + ".qweight", DType::I32, {uK, uN / 8}, le_bytes(vllm::awq_pack(q, K, N))});
          tensors.push_back({m + ".qzeros", DType::I32, {uG, uN / 8}, le_bytes(vllm::awq_pack(z, G, N))});
          tensors.push_back({m + ".scales", DType::F16, {uG, uN}, le_bytes_of_mat<uint16_t>(s)});
          continue;
        }
        const std::vector<uint32_t> packed = vllm::gptq_pack(q, K, N);  // [K/8, N]
        std::vector<uint32_t> gptq_z(uG * uN / 8, 0), ct_z(uN / 8 * uG, 0);
        const uint32_t offset = v.format == quant::Format::kGptq && !v.gptq_v2 ? 1 : 0;
        for (uint64_t g = 0; g < uG; ++g)
          for (uint64_t c = 0; c < uN; ++c) {
            const uint32_t zz = static_cast<uint32_t>(z[g * uN + c]);
            gptq_z[g * (uN / 8) + c / 8] |= ((zz - offset) & 15u) << (4 * (c % 8));
            ct_z[(c / 8) * uG + g] |= zz << (4 * (c % 8));
          }
        if (!ct) {
          tensors.push_back({m + ".qweight", DType::I32, {uK / 8, uN}, le_bytes(packed)});
          tensors.push_back({m + ".qzeros", DType::I32, {uG, uN / 8}, le_bytes(gptq_z)});
          tensors.push_back({m + ".scales", DType::F16, {uG, uN}, le_bytes_of_mat<uint16_t>(s)});
          tensors.push_back({m + ".g_idx", DType::I32, {uK}, le_bytes_of_mat<int32_t>(g_idx)});
          continue;
        }
        std::vector<uint32_t> wp(packed.size());
        for (uint64_t r = 0; r < uK / 8; ++r)
          for (uint64_t c = 0; c < uN; ++c) wp[c * (uK / 8) + r] = packed[r * uN + c];
        vllm::Mat s_t(s.size());
        for (uint64_t g = 0; g < uG; ++g)
          for (uint64_t c = 0; c < uN; ++c) s_t[c * uG + g] = s[g * uN + c];
        tensors.push_back({m + ".weight_packed", DType::I32, {uN, uK / 8}, le_bytes(wp)});
        tensors.push_back({m + ".weight_scale", DType::F16, {uN, uG}, le_bytes_of_mat<uint16_t>(s_t)});
        tensors.push_back({m + ".weight_shape", DType::I64, {2}, le_bytes(std::vector<int64_t>{N, K})});
        if (!v.symmetric) tensors.push_back({m + ".weight_zero_point", DType::I32, {uN / 8, uG}, le_bytes(ct_z)});
        if (v.act_order) tensors.push_back({m + ".weight_g_idx", DType::I32, {uK}, le_bytes_of_mat<int32_t>(g_idx)});
      }
  tensors.push_back({"model.norm.weight", DType::F16, {4}, std::vector<uint8_t>(8, 0x3C)});
  std::filesystem::create_directories(dir);
  write_small_safetensors(dir + "/model.safetensors", tensors);
  ojson config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}};
  config["quantization_config"] = quant::quantization_config(scheme_of(v), {"lm_head"});
  if (v.act_order && v.format == quant::Format::kCompressedTensors)  // llm-compressor's actorder "group"
    config["quantization_config"]["config_groups"]["group_0"]["weights"]["actorder"] = "group";
  std::ofstream(dir + "/config.json") << config.dump(2) << "\n";
}

void run_marlin(const std::string& src, const std::string& dst, bool undo, int threads,
                uint64_t whole_codes_max = MarlinOptions{}.whole_codes_max_bytes) {
  Checkpoint ck = open_checkpoint(src);
  MarlinOptions o;
  o.undo = undo;
  o.whole_codes_max_bytes = whole_codes_max;
  MarlinPlan mp = plan_marlin(ck, o);
  ExecOptions eo;
  eo.threads = threads;
  eo.protected_paths = {src};
  execute(mp.plan, dst, eo);
}

class MarlinCommand : public ::testing::TestWithParam<Variant> {};

}  // namespace

TEST_P(MarlinCommand, EqualsVllmReferenceAndUndoesBitForBit) {
  const Variant v = GetParam();
  ScratchDir dir;
  Expected want;
  write_checkpoint(v, dir / "src", want);
  run_marlin(dir / "src", dir / "marlin", false, 2);
  std::map<std::string, SmallTensor> got;
  for (auto& t : read_small_safetensors(dir / "marlin/model.safetensors")) got[t.name] = std::move(t);
  for (const auto& [name, bytes] : want) {
    ASSERT_TRUE(got.count(name)) << v.name << ": no " << name;
    EXPECT_TRUE(got[name].bytes == bytes) << v.name << ": " << name << " differs from vLLM's reference";
  }
  // Symmetric GPTQ's constant qzeros and a trivial g_idx are dropped, as vLLM drops them.
  for (const auto& [name, t] : got) {
    if (!want.count(name)) {
      EXPECT_TRUE(name == "model.norm.weight" || name.ends_with(".weight_shape")) << v.name << ": unexpected " << name;
    }
  }
  const ojson cfg = ojson::parse(test::read_file_bytes(dir / "marlin/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], kMarlinQuantMethod);

  // The same bytes at another thread count (act-order: the compact gathers per chunk); and back
  // to the source, bit for bit.
  if (v.act_order) {
    run_marlin(dir / "src", dir / "marlin1", false, 1);
    EXPECT_EQ(test::read_file_bytes(dir / "marlin/model.safetensors"), test::read_file_bytes(dir / "marlin1/model.safetensors"));
  }
  run_marlin(dir / "marlin", dir / "back", true, 2);
  EXPECT_EQ(test::read_file_bytes(dir / "back/model.safetensors"), test::read_file_bytes(dir / "src/model.safetensors"))
      << v.name << ": --undo is not the source";
  // compressed-tensors codes read stripe by stripe (weights above whole_codes_max_bytes) give the
  // same bytes as read whole, both ways.
  if (v.format == quant::Format::kCompressedTensors) {
    run_marlin(dir / "src", dir / "stripes", false, 2, 0);
    EXPECT_EQ(test::read_file_bytes(dir / "stripes/model.safetensors"), test::read_file_bytes(dir / "marlin/model.safetensors"));
    run_marlin(dir / "marlin", dir / "back-stripes", true, 2, 0);
    EXPECT_EQ(test::read_file_bytes(dir / "back-stripes/model.safetensors"), test::read_file_bytes(dir / "src/model.safetensors"));
  }
  EXPECT_EQ(ojson::parse(test::read_file_bytes(dir / "back/config.json")),
            ojson::parse(test::read_file_bytes(dir / "src/config.json")));
}

INSTANTIATE_TEST_SUITE_P(
    Formats, MarlinCommand,
    ::testing::Values(Variant{"gptq_v1_asym_actorder_g32", quant::Format::kGptq, 32, false, true, false},
                      Variant{"gptq_v2_asym_g64", quant::Format::kGptq, 64, false, false, true},
                      Variant{"gptq_sym_actorder_g128", quant::Format::kGptq, 128, true, true, false},
                      Variant{"gptq_sym_channel", quant::Format::kGptq, -1, true, false, false},
                      Variant{"awq_g128", quant::Format::kAwq, 128, false, false, false},
                      Variant{"awq_channel", quant::Format::kAwq, -1, false, false, false},
                      Variant{"ct_asym_actorder_g64", quant::Format::kCompressedTensors, 64, false, true, false},
                      Variant{"ct_sym_g32", quant::Format::kCompressedTensors, 32, true, false, false}),
    [](const auto& info) { return info.param.name; });

namespace {

// A one-Linear GPTQ checkpoint of [n, k] with the given g_idx rule and zero words.
void write_small_gptq(const std::string& dir, uint64_t n, uint64_t k, bool sym, uint32_t zero_word, bool trivial_g_idx) {
  const uint64_t g = k / 32;
  std::vector<int32_t> gi(k);
  for (uint64_t i = 0; i < k; ++i) gi[i] = static_cast<int32_t>(trivial_g_idx ? i / 32 : (i + 1) % k / 32);
  std::vector<SmallTensor> t = {
      {"m.qweight", DType::I32, {k / 8, n}, std::vector<uint8_t>(k / 8 * n * 4, 0x5A)},
      {"m.qzeros", DType::I32, {g, n / 8}, le_bytes(std::vector<uint32_t>(g * n / 8, zero_word))},
      {"m.scales", DType::F16, {g, n}, std::vector<uint8_t>(g * n * 2, 0x3C)},
      {"m.g_idx", DType::I32, {k}, le_bytes(gi)}};
  std::filesystem::create_directories(dir);
  write_small_safetensors(dir + "/model.safetensors", t);
  Variant v{"x", quant::Format::kGptq, 32, sym, false, false};
  ojson config = {{"architectures", {"LlamaForCausalLM"}}};
  config["quantization_config"] = quant::quantization_config(scheme_of(v), {});
  std::ofstream(dir + "/config.json") << config.dump(2) << "\n";
}

std::string refusal(const std::string& src) {
  try {
    MarlinOptions o;
    plan_marlin(open_checkpoint(src), o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(MarlinCommandRefusals, NameTheTensorAndTheRule) {
  ScratchDir dir;
  write_small_gptq(dir / "k", 128, 160, true, 0x77777777u, true);  // K % 128
  EXPECT_NE(refusal(dir / "k").find("not a multiple of 128"), std::string::npos) << refusal(dir / "k");
  EXPECT_NE(refusal(dir / "k").find("m.qweight"), std::string::npos);
  write_small_gptq(dir / "n", 96, 128, true, 0x77777777u, true);  // N % 64
  EXPECT_NE(refusal(dir / "n").find("multiple of 64"), std::string::npos) << refusal(dir / "n");
  write_small_gptq(dir / "z", 128, 128, true, 0x12345678u, true);  // sym qzeros not the constant
  EXPECT_NE(refusal(dir / "z").find("m.qzeros"), std::string::npos) << refusal(dir / "z");
  write_small_gptq(dir / "g", 128, 128, true, 0x77777777u, false);  // desc_act false, g_idx not trivial
  EXPECT_NE(refusal(dir / "g").find("desc_act"), std::string::npos) << refusal(dir / "g");
  // v1 asymmetric with a stored 0xF (zero 16): refused when the zeros are made, nothing written.
  write_small_gptq(dir / "v1", 128, 128, false, 0xFFFFFFFFu, true);
  Checkpoint ck = open_checkpoint(dir / "v1");
  MarlinPlan mp = plan_marlin(ck, MarlinOptions{});
  ExecOptions eo;
  try {
    execute(mp.plan, dir / "out", eo);
    FAIL() << "zero 16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  // Not INT4; and --undo of something that is not a Marlin output.
  EXPECT_NE(refusal(test::testdata("llama")).find("not an INT4 checkpoint"), std::string::npos);
  MarlinOptions undo;
  undo.undo = true;
  try {
    plan_marlin(open_checkpoint(dir / "k"), undo);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not ckpt_marlin"), std::string::npos) << e.what();
  }
}
