// ckpt's ggml encoders against ggml's own: the reference quantizers and float conversions are
// called directly from the libggml-base.so that node-llama-cpp 3.21.1 ships (installed by the test
// setup, tests/support/npm_fetch.sh), and every byte must match; the fast paths must match the
// reference on the same rows.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "npm_paths.h"
#include "ops/ggml_blocks.h"

using namespace ckpt;
using ops::GgmlType;

namespace {

using QuantizeRow = void (*)(const float*, void*, int64_t);

class Ggml {
 public:
  Ggml() {
    const std::string path = test::libggml_base_path();
    if (!std::filesystem::exists(path)) return;
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  ~Ggml() {
    if (handle_) dlclose(handle_);
  }
  bool loaded() const { return handle_ != nullptr; }
  QuantizeRow fn(const char* name) const { return reinterpret_cast<QuantizeRow>(dlsym(handle_, name)); }

 private:
  void* handle_ = nullptr;
};

const Ggml& ggml() {
  static Ggml g;
  return g;
}

#define REQUIRE_GGML()                                                                             \
  if (!ggml().loaded())                                                                            \
  GTEST_SKIP() << "SKIPPED: " << test::libggml_base_path()                                         \
               << " is missing (node-llama-cpp " << test::kNodeLlamaCppVersion                     \
               << " not installed: run tests/support/npm_fetch.sh; the registry may be unreachable)"

// ggml's symbol for each type's reference encoder.
const char* ref_symbol(GgmlType t) {
  switch (t) {
    case GgmlType::F16: return "ggml_fp32_to_fp16_row";
    case GgmlType::BF16: return "ggml_fp32_to_bf16_row_ref";
    case GgmlType::Q8_0: return "quantize_row_q8_0_ref";
    case GgmlType::Q4_0: return "quantize_row_q4_0_ref";
    case GgmlType::Q4_1: return "quantize_row_q4_1_ref";
    case GgmlType::Q5_0: return "quantize_row_q5_0_ref";
    case GgmlType::Q5_1: return "quantize_row_q5_1_ref";
    case GgmlType::Q4_K: return "quantize_row_q4_K_ref";
    case GgmlType::Q5_K: return "quantize_row_q5_K_ref";
    case GgmlType::Q6_K: return "quantize_row_q6_K_ref";
    case GgmlType::F32: break;
  }
  return nullptr;
}

// Rows that reach every branch: several magnitudes, exact ties at the rounding points of each
// format, all-zero, constant and single-outlier blocks, negative-dominated blocks, subnormals.
std::vector<std::vector<float>> test_rows(uint64_t n) {
  std::vector<std::vector<float>> rows;
  std::mt19937 rng(20261205);
  for (float scale : {3e-6f, 1e-3f, 0.05f, 1.0f, 37.0f, 1e4f}) {
    std::normal_distribution<float> nd(0.0f, scale);
    for (int r = 0; r < 6; ++r) {
      std::vector<float> v(n);
      for (auto& x : v) x = nd(rng);
      rows.push_back(v);
    }
  }
  std::vector<float> zeros(n, 0.0f), constant(n, 0.75f), negconst(n, -2.5f);
  rows.push_back(zeros);
  rows.push_back(constant);
  rows.push_back(negconst);
  std::vector<float> outlier(n, 0.01f);
  for (uint64_t i = 0; i < n; i += 37) outlier[i] = -90.0f;
  rows.push_back(outlier);
  // Halves on small integer grids: x*id lands exactly on .5 for Q8_0 (d = 127/127), Q4_0/Q4_1.
  std::vector<float> halves(n), grid(n), sub(n);
  for (uint64_t i = 0; i < n; ++i) {
    halves[i] = static_cast<float>(static_cast<int>(i % 255) - 127) * 0.5f;
    grid[i] = static_cast<float>(static_cast<int>(i % 17) - 8) * 0.25f;
    sub[i] = (i % 2 ? 1 : -1) * 1e-40f * static_cast<float>(i % 7);
  }
  halves[0] = 127.0f;
  rows.push_back(halves);
  rows.push_back(grid);
  rows.push_back(sub);
  return rows;
}

std::string first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return "byte " + std::to_string(i) + ": " + std::to_string(a[i]) + " vs " + std::to_string(b[i]);
  return "sizes differ";
}

class GgmlEncoders : public ::testing::TestWithParam<GgmlType> {};

TEST_P(GgmlEncoders, ReferenceMatchesLibggmlByteForByte) {
  REQUIRE_GGML();
  const GgmlType t = GetParam();
  QuantizeRow theirs = ggml().fn(ref_symbol(t));
  ASSERT_NE(theirs, nullptr) << ref_symbol(t) << " is not exported";
  const uint64_t n = 1024;  // 4 super-blocks, 32 blocks
  const uint64_t bytes = *ops::ggml_nbytes(t, n, 1);
  int row = 0;
  for (const auto& x : test_rows(n)) {
    std::vector<uint8_t> want(bytes), got(bytes, 0xAA);
    theirs(x.data(), want.data(), static_cast<int64_t>(n));
    ops::encode_row_reference(t, x.data(), got.data(), n);
    ASSERT_EQ(got, want) << ops::ggml_type_info(t).name << " row " << row << ": " << first_difference(got, want);
    ++row;
  }
}

TEST_P(GgmlEncoders, FastPathMatchesReference) {
  const GgmlType t = GetParam();
  const uint64_t n = 4096;
  const uint64_t bytes = *ops::ggml_nbytes(t, n, 1);
  int row = 0;
  for (const auto& x : test_rows(n)) {
    std::vector<uint8_t> want(bytes), got(bytes, 0x55);
    ops::encode_row_reference(t, x.data(), want.data(), n);
    ops::encode_row(t, x.data(), got.data(), n);
    ASSERT_EQ(got, want) << ops::ggml_type_info(t).name << " row " << row << ": " << first_difference(got, want);
    ++row;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgmlEncoders,
                         ::testing::Values(GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                                           GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K,
                                           GgmlType::Q5_K, GgmlType::Q6_K),
                         [](const auto& info) { return std::string(ops::ggml_type_info(info.param).name); });

TEST(GgmlFloat, EveryHalfOfTheF32SpaceConvertsLikeGgml) {
  REQUIRE_GGML();
  QuantizeRow to_f16 = ggml().fn("ggml_fp32_to_fp16_row");
  QuantizeRow to_bf16 = ggml().fn("ggml_fp32_to_bf16_row_ref");
  ASSERT_NE(to_f16, nullptr);
  ASSERT_NE(to_bf16, nullptr);
  // Every 16-bit high half with 64 low halves each (rounding boundaries, NaNs, infinities).
  std::vector<float> x;
  for (uint32_t hi = 0; hi < 65536; ++hi)
    for (uint32_t lo : {0x0000u, 0x0001u, 0x0FFFu, 0x1000u, 0x1001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) {
      const uint32_t u = (hi << 16) | lo;
      float f;
      std::memcpy(&f, &u, 4);
      x.push_back(f);
    }
  std::vector<uint16_t> want(x.size()), want_b(x.size());
  to_f16(x.data(), want.data(), static_cast<int64_t>(x.size()));
  to_bf16(x.data(), want_b.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(ops::ggml_fp32_to_fp16(x[i]), want[i]) << "f16 of input " << i;
    ASSERT_EQ(ops::ggml_fp32_to_bf16(x[i]), want_b[i]) << "bf16 of input " << i;
  }
}

TEST(GgmlTypes, SizesAreGgmls) {
  EXPECT_EQ(ops::ggml_nbytes(GgmlType::Q8_0, 64, 3), 34u * 2 * 3);
  EXPECT_EQ(ops::ggml_nbytes(GgmlType::Q4_K, 512, 2), 144u * 2 * 2);
  EXPECT_EQ(ops::ggml_nbytes(GgmlType::Q6_K, 256, 1), 210u);
  EXPECT_FALSE(ops::ggml_nbytes(GgmlType::Q4_K, 64, 1).has_value());
  EXPECT_FALSE(ops::ggml_nbytes(GgmlType::Q8_0, 48, 1).has_value());
  EXPECT_FALSE(ops::ggml_nbytes(GgmlType::F16, UINT64_MAX, 2).has_value());
}

}  // namespace
