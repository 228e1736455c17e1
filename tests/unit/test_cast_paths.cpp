// Every cast path this CPU can run (portable, AVX2+F16C, AVX-512) against the scalar reference:
// all 65,536 patterns of each 16-bit source, every f32 exponent with its rounding edges and ties
// at every bit position plus 10^7 random f32 patterns, and f64 edges plus random patterns. Also
// every path against torch's own vectors directly.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "ops/cast.h"
#include "cast_patterns.h"
#include "tensor_bytes.h"
#include "test_support.h"

namespace {

using namespace ckpt;
using ops::CastPath;
using namespace ckpt::test;

const DType kSources[] = {DType::F64, DType::F32, DType::F16, DType::BF16};
const DType kTargets[] = {DType::F32, DType::F16, DType::BF16};

size_t esize(DType t) { return dtype_bits(t) / 8; }

// Runs `path` on `in` at a misaligned address and compares with the reference byte for byte;
// reports the first differing elements.
void expect_path_matches_reference(CastPath path, DType from, DType to, const std::vector<uint8_t>& in) {
  const size_t n = in.size() / esize(from);
  std::vector<uint8_t> src(in.size() + 1), want(n * esize(to)), got(n * esize(to) + 1, 0xA5);
  std::memcpy(src.data() + 1, in.data(), in.size());
  ops::cast_reference(from, to, src.data() + 1, want.data(), n);
  ops::cast_on(path, from, to, src.data() + 1, got.data() + 1, n);
  size_t bad = 0;
  for (size_t k = 0; k < n; ++k) {
    if (std::memcmp(want.data() + k * esize(to), got.data() + 1 + k * esize(to), esize(to)) == 0) continue;
    if (bad++ < 5) {
      uint64_t x = 0, w = 0, g = 0;
      std::memcpy(&x, in.data() + k * esize(from), esize(from));
      std::memcpy(&w, want.data() + k * esize(to), esize(to));
      std::memcpy(&g, got.data() + 1 + k * esize(to), esize(to));
      ADD_FAILURE() << ops::cast_path_name(path) << " " << dtype_name(from) << "->" << dtype_name(to) << " input 0x"
                    << std::hex << x << ": got 0x" << g << ", reference 0x" << w;
    }
  }
  EXPECT_EQ(bad, 0u) << ops::cast_path_name(path) << " " << dtype_name(from) << "->" << dtype_name(to);
  EXPECT_EQ(got[0], 0xA5) << "wrote before the output";
}

class CastPaths : public ::testing::TestWithParam<CastPath> {};

TEST_P(CastPaths, All16BitPatterns) {
  const auto in = all_16bit_patterns();
  for (DType from : {DType::F16, DType::BF16})
    for (DType to : kTargets) expect_path_matches_reference(GetParam(), from, to, in);
}

TEST_P(CastPaths, SpecialF32Patterns) {
  const auto in = as_bytes(special_f32_patterns());
  for (DType to : kTargets) expect_path_matches_reference(GetParam(), DType::F32, to, in);
}

TEST_P(CastPaths, TenMillionRandomF32Patterns) {
  const auto in = as_bytes(random_f32_patterns(10'000'003));
  for (DType to : {DType::F16, DType::BF16}) expect_path_matches_reference(GetParam(), DType::F32, to, in);
}

TEST_P(CastPaths, F64PatternsSpecialAndRandom) {
  const auto in = as_bytes(f64_test_patterns());
  for (DType to : kTargets) expect_path_matches_reference(GetParam(), DType::F64, to, in);
}

// The fast path against torch directly, not only against our reference.
TEST_P(CastPaths, TorchVectors) {
  struct Case {
    const char *file, *input, *output;
  };
  const Case cases[] = {
      {"cast16", "bf16_all", "bf16_to_f16"}, {"cast16", "bf16_all", "bf16_to_f32"},
      {"cast16", "f16_all", "f16_to_bf16"},  {"cast16", "f16_all", "f16_to_f32"},
      {"cast32", "f32_in", "f32_to_bf16"},   {"cast32", "f32_in", "f32_to_f16"},
      {"cast32", "f64_in", "f64_to_f32"},    {"cast32", "f64_in", "f64_to_bf16"},
      {"cast32", "f64_in", "f64_to_f16"},
  };
  for (const auto& c : cases) {
    const std::string file = test::testdata(std::string("numerics/") + c.file + ".safetensors");
    auto in = test::load_tensor_bytes(file, c.input);
    auto want = test::load_tensor_bytes(file, c.output);
    std::vector<uint8_t> got(want.bytes.size());
    ops::cast_on(GetParam(), in.dtype, want.dtype, in.bytes.data(), got.data(), in.bytes.size() / esize(in.dtype));
    EXPECT_TRUE(got == want.bytes) << ops::cast_path_name(GetParam()) << " " << c.output;
  }
}

INSTANTIATE_TEST_SUITE_P(ThisCpu, CastPaths, ::testing::ValuesIn(ops::cast_paths_on_this_cpu()),
                         [](const auto& info) {
                           switch (info.param) {
                             case CastPath::kAvx2: return std::string("avx2");
                             case CastPath::kAvx512: return std::string("avx512");
                             default: return std::string("portable");
                           }
                         });

TEST(CastPaths, EveryPairIsOfferedAndOthersRefused) {
  uint8_t buf[16] = {};
  for (DType from : kSources)
    for (DType to : kTargets) EXPECT_NO_THROW(ops::cast(from, to, buf, buf + 8, 1));
  EXPECT_THROW(ops::cast(DType::I32, DType::F16, buf, buf + 8, 1), std::logic_error);
  EXPECT_THROW(ops::cast(DType::F16, DType::F64, buf, buf + 8, 1), std::logic_error);
  EXPECT_FALSE(ops::is_cast_source(DType::F8_E4M3));
  EXPECT_FALSE(ops::is_cast_target(DType::F64));
}

// This machine has AVX2 and AVX-512: make sure the test above really ran those paths here.
TEST(CastPaths, ReportsThePathsOfThisCpu) {
  auto paths = ops::cast_paths_on_this_cpu();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), CastPath::kPortable);
  __builtin_cpu_init();
  EXPECT_EQ(paths.size(), 1u + (__builtin_cpu_supports("avx2") ? 1u : 0u) +
                              (__builtin_cpu_supports("avx512f") ? 1u : 0u));
}

}  // namespace
