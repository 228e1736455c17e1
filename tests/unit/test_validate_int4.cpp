// ckpt validate of INT4 checkpoints (issue 13): every output of `quantize --int4` (GPTQ sym/asym,
// AWQ, compressed-tensors sym/asym; groups 32 and -1) passes structure, checksums and the CPU
// GEMM check with every Linear run; each broken rule (a zero point out of range or not 8 where
// the scheme is symmetric, g_idx out of range, a scale shape, config.json disagreeing with the
// tensors, a tensor the scheme does not have) fails with one line naming the file, the tensor and
// the rule. The CPU GEMM check dequantizes through the formats' one decoder (ops::int4_decode).
#include <gtest/gtest.h>

#include <filesystem>

#include "int4_cases.h"
#include "model/linear.h"
#include "ops/int4_quant.h"
#include "test_support.h"
#include "validate/validate.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::validate;
using namespace ckpt::test;
namespace fs = std::filesystem;

namespace {

using Outcome = CpuValidation;

// Exactly one failure, of `check`, naming `tensor` and the model file, its message holding `rule`.
void expect_one_failure(const Outcome& o, const std::string& dir, const std::string& check, const std::string& tensor,
                        const std::string& rule) {
  const auto failures = o.report.failures();
  std::string all;
  for (const auto& f : failures) all += f.line() + "\n";
  ASSERT_EQ(failures.size(), 1u) << all;
  const Failure& f = failures[0];
  EXPECT_EQ(f.check, check) << all;
  EXPECT_EQ(f.tensor, tensor) << all;
  EXPECT_EQ(f.file, dir + "/model.safetensors") << all;
  EXPECT_NE(f.message.find(rule), std::string::npos) << all;
  EXPECT_EQ(f.line().find('\n'), std::string::npos);
}

FixtureTensor* find(std::vector<FixtureTensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return &t;
  return nullptr;
}

ojson config_of(const std::string& dir) { return parse_strict_json(read_text_file(dir + "/config.json")).value; }

const std::string kDown = "model.layers.1.mlp.down_proj";

}  // namespace

TEST(ValidateInt4, EveryFormatPassesWithEveryLinearRun) {
  struct Case {
    const char* format;
    bool sym;
    int64_t group;
  };
  for (const Case c : {Case{"gptq", true, 32}, Case{"gptq", false, 32}, Case{"gptq", true, -1}, Case{"awq", false, 32},
                       Case{"awq", false, -1}, Case{"compressed-tensors", true, 32}, Case{"compressed-tensors", false, -1}}) {
    SCOPED_TRACE(std::string(c.format) + (c.sym ? " sym " : " asym ") + std::to_string(c.group));
    ScratchDir tmp;
    write_int4_fixture(tmp / "q", c.format, c.sym, c.group);
    auto o = run_cpu(tmp / "q");
    ASSERT_TRUE(o->report.ok()) << o->report.table();
    const Target& t = *o->prepared.layout.targets[0];
    ASSERT_EQ(t.linears.size(), 15u);  // 2 layers x 7, lm_head stays bf16
    size_t int4 = 0;
    for (const auto& lw : t.linears) int4 += lw.is_int4();
    EXPECT_EQ(int4, 14u);
    bool gemm = false;
    for (const auto& p : o->report.phases())
      if (p.name == "gemm (cpu)") {
        gemm = true;
        EXPECT_EQ(p.details["weights"], 15);
      }
    EXPECT_TRUE(gemm);
  }
}

// The Linear the GEMM check multiplies with decodes to ops::int4_decode's values, element for element.
TEST(ValidateInt4, GemmCheckUsesTheFormatsDecoder) {
  ScratchDir tmp;
  write_int4_fixture(tmp / "q", "awq", false, 32);
  auto o = run_cpu(tmp / "q");
  ASSERT_TRUE(o->report.ok()) << o->report.table();
  const Target& t = *o->prepared.layout.targets[0];
  model::HostTensors host(t.ck);
  for (const auto& lw : t.linears) {
    if (!lw.is_int4()) continue;
    const auto w = model::stored_linear(lw, host);
    std::vector<double> rows(lw.n * lw.k);
    w->dequantize_rows(0, lw.n, rows.data());
    ops::Int4Stored st;
    std::vector<uint32_t> q(lw.weight->nbytes() / 4), z(lw.zeros->nbytes() / 4);
    std::vector<uint8_t> s(lw.scale->nbytes());
    File f = File::open_read(t.ck.files[0].path);
    f.pread_exact(q.data(), lw.weight->nbytes(), lw.weight->view.offset);
    f.pread_exact(z.data(), lw.zeros->nbytes(), lw.zeros->view.offset);
    f.pread_exact(s.data(), s.size(), lw.scale->view.offset);
    st.weights = q.data();
    st.zeros = z.data();
    st.scales = s.data();
    std::vector<float> want(lw.n * lw.k);
    ASSERT_TRUE(ops::int4_decode(*lw.int4, ops::int4_geometry(*lw.int4, lw.n, lw.k), st, 0, lw.n, want.data()));
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(rows[i], double(want[i])) << lw.name << " element " << i;
  }
}

// Sets byte `byte` of `tensor` of a fresh `format` checkpoint to `value`: one failure naming it.
static void expect_byte_caught(const char* format, bool sym, const std::string& tensor, size_t byte, uint8_t value,
                        const std::string& rule) {
  ScratchDir tmp;
  const std::string dir = tmp / "q";
  write_int4_fixture(dir, format, sym, 32);
  auto ts = read_fixture_tensors(dir);
  find(ts, tensor)->bytes[byte] = value;
  rewrite_fixture(dir, ts, config_of(dir));
  expect_one_failure(*run_cpu(dir), dir, "int4", tensor, rule);
}

TEST(ValidateInt4, WrongQzerosOfASymmetricCheckpointAreNamed) {
  // One zero point 9 (stored 8) in a 0x77777777 word.
  expect_byte_caught("gptq", true, kDown + ".qzeros", 5, 0x78, "is 9 in a symmetric checkpoint");
}

TEST(ValidateInt4, ZeroPointNibbleOutOfRangeIsNamed) {
  // GPTQ v1 stores zero - 1; a stored nibble 0xF reads back as 16, outside every kernel's range.
  expect_byte_caught("gptq", true, kDown + ".qzeros", 0, 0x7F, "reads back as 16");
}

TEST(ValidateInt4, GroupIndexOutOfRangeIsNamed) {
  ScratchDir tmp;
  const std::string dir = tmp / "q";
  write_int4_fixture(dir, "gptq", false, 32);
  auto ts = read_fixture_tensors(dir);
  // With act-order (desc_act true) g_idx is read: a group past the last is out of range.
  const ojson plain = config_of(dir);
  ojson c = plain;
  c["quantization_config"]["desc_act"] = true;
  find(ts, kDown + ".g_idx")->bytes[4 * 3] = 9;  // g_idx[3] = 9 of 4 groups
  rewrite_fixture(dir, ts, c);
  expect_one_failure(*run_cpu(dir), dir, "int4", kDown + ".g_idx", "g_idx[3] = 9 is outside [0, 4)");
  // Without act-order vLLM ignores g_idx (k / G) while other readers use it: it must be k / G.
  find(ts, kDown + ".g_idx")->bytes[4 * 3] = 1;
  rewrite_fixture(dir, ts, plain);
  expect_one_failure(*run_cpu(dir), dir, "int4", kDown + ".g_idx", "without act-order");
}

TEST(ValidateInt4, ScaleShapeMismatchIsNamed) {
  ScratchDir tmp;
  const std::string dir = tmp / "q";
  write_int4_fixture(dir, "compressed-tensors", true, 32);
  auto ts = read_fixture_tensors(dir);
  FixtureTensor* s = find(ts, kDown + ".weight_scale");
  ASSERT_EQ(s->shape, (std::vector<uint64_t>{64, 4}));
  s->shape = {64, 2};  // the bytes of [64, 4] read as [64, 2] would be another grid
  s->bytes.resize(64 * 2 * 2);
  rewrite_fixture(dir, ts, config_of(dir));
  expect_one_failure(*run_cpu(dir), dir, "int4", kDown + ".weight_scale",
                     "BF16 [64, 2], but int4 compressed-tensors sym group 32 (config.json) stores BF16 [64, 4]");
}

TEST(ValidateInt4, ConfigDisagreeingWithTheTensorsIsNamed) {
  ScratchDir tmp;
  const std::string dir = tmp / "q";
  write_int4_fixture(dir, "gptq", true, 32);
  auto ts = read_fixture_tensors(dir);
  // group_size 64 in config.json, tensors of group 32: the first Linear's zero points are named.
  ojson c = config_of(dir);
  c["quantization_config"]["group_size"] = 64;
  rewrite_fixture(dir, ts, c);
  auto o = run_cpu(dir);
  ASSERT_FALSE(o->report.ok());
  const Failure f = o->report.failures().front();
  EXPECT_EQ(f.check, "int4");
  EXPECT_EQ(f.tensor, "model.layers.0.mlp.down_proj.qzeros");
  EXPECT_NE(f.message.find("I32 [4, 8], but int4 gptq sym group 64 (config.json) stores I32 [2, 8] for a [64, 128] weight"),
            std::string::npos)
      << f.line();
  // compressed-tensors: a zero point the symmetric config does not have is named; declared asymmetric, a
  // missing one is.
  ScratchDir tmp2;
  const std::string ct = tmp2 / "ct";
  write_int4_fixture(ct, "compressed-tensors", false, 32);
  ojson cc = config_of(ct);
  cc["quantization_config"]["config_groups"]["group_0"]["weights"]["symmetric"] = true;
  auto cts = read_fixture_tensors(ct);
  std::vector<FixtureTensor> one_extra;
  for (auto& t : cts)
    if (t.name.find("weight_zero_point") == std::string::npos || t.name == kDown + ".weight_zero_point") one_extra.push_back(t);
  rewrite_fixture(ct, one_extra, cc);
  expect_one_failure(*run_cpu(ct), ct, "quant-config", kDown + ".weight_zero_point",
                     "tensor that int4 compressed-tensors sym group 32 (config.json's quantization_config) does not have");
  cc["quantization_config"]["config_groups"]["group_0"]["weights"]["symmetric"] = false;
  std::vector<FixtureTensor> one_missing;
  for (auto& t : cts)
    if (t.name != kDown + ".weight_zero_point") one_missing.push_back(t);
  rewrite_fixture(ct, one_missing, cc);
  expect_one_failure(*run_cpu(ct), ct, "int4", kDown + ".weight_zero_point", "tensor is missing");
}

TEST(ValidateInt4, NonPositiveScaleIsNamed) {
  // Element 7 of AWQ's F16 scales [G, N] gets its sign bit set: a negative multiplier.
  expect_byte_caught("awq", false, kDown + ".scales", 2 * 7 + 1, 0x80, "element 7: scale of row 7, group 0 is -0");
}

// compressed-tensors with actorder "group" (llm-compressor's GPTQ) carries weight_g_idx I32 [K]:
// taken as the Linear's g_idx (read, since act-order), a wrong shape named.
TEST(ValidateInt4, CompressedTensorsActOrderGroupIndex) {
  ScratchDir tmp;
  const std::string dir = tmp / "q";
  write_int4_fixture(dir, "compressed-tensors", true, 32);
  auto ts = read_fixture_tensors(dir);
  ojson c = config_of(dir);
  c["quantization_config"]["config_groups"]["group_0"]["weights"]["actorder"] = "group";
  FixtureTensor g{kDown + ".weight_g_idx", DType::I32, {128}, {}};
  for (int32_t k = 0; k < 128; ++k)
    for (int b = 0; b < 4; ++b) g.bytes.push_back(static_cast<uint8_t>(((k / 32) >> (8 * b)) & 0xFF));
  ts.push_back(g);
  rewrite_fixture(dir, ts, c);
  auto o = run_cpu(dir);
  ASSERT_TRUE(o->report.ok()) << o->report.table();
  size_t with_g_idx = 0;
  for (const auto& lw : o->prepared.layout.targets[0]->linears) with_g_idx += lw.g_idx != nullptr;
  EXPECT_EQ(with_g_idx, 1u);
  ts.back().shape = {64};
  ts.back().bytes.resize(64 * 4);
  rewrite_fixture(dir, ts, c);
  expect_one_failure(*run_cpu(dir), dir, "int4", kDown + ".weight_g_idx", "I32 [64], but an act-order g_idx is I32 [128]");
}

// The packing rules on arrays no fixture model has: compressed-tensors rows whose K is not a
// multiple of 8 (codes past K) and N not a multiple of 8 (zero points past N) must be 0-padded.
TEST(ValidateInt4, PaddingNibblesPastKAndNAreChecked) {
  ops::Int4Scheme s;
  s.format = ops::Int4Format::kCompressedTensors;
  s.group_size = -1;
  s.symmetric = false;
  s.scale_dtype = DType::BF16;
  const uint64_t n = 12, k = 20;
  const Int4Arrays a = int4_reference_arrays(s, DType::BF16, int4_hard_weight(n, k, k, DType::BF16, 7), n, k);
  const ops::Int4Geometry geo = ops::int4_geometry(s, n, k);
  auto check = [&](std::vector<uint32_t> w, std::vector<uint32_t> z) {
    ops::Int4Stored st;
    st.weights = w.data();
    st.zeros = z.data();
    st.scales = a.scales.data();
    return ops::int4_check_stored(s, geo, st, false);
  };
  EXPECT_FALSE(check(a.weights, a.zeros)) << check(a.weights, a.zeros).rule;
  std::vector<uint32_t> w = a.weights;
  w[3 * 3 + 2] |= 1u << 20;  // row 3, word 2 (columns 16..23), column 21: past K = 20
  const ops::Int4ArrayIssue past_k = check(w, a.zeros);
  EXPECT_EQ(past_k.array, ops::Int4ArrayIssue::kWeights);
  EXPECT_EQ(past_k.index, 11u);
  EXPECT_NE(past_k.rule.find("row 3 has non-zero nibbles past in_features 20"), std::string::npos) << past_k.rule;
  std::vector<uint32_t> z = a.zeros;
  z[1] |= 0xFu << 28;  // zero-point word (rows 8..15, group 0), row 15: past N = 12
  const ops::Int4ArrayIssue past_n = check(a.weights, z);
  EXPECT_EQ(past_n.array, ops::Int4ArrayIssue::kZeros);
  EXPECT_NE(past_n.rule.find("past out_features 12"), std::string::npos) << past_n.rule;
}
