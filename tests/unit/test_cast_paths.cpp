// Every cast path this CPU can run (portable, AVX2+F16C, AVX-512) against the scalar reference:
// all 65,536 patterns of each 16-bit source, every f32 exponent with its rounding edges and ties
// at every bit position plus 10^7 random f32 patterns, and f64 edges plus random patterns. Also
// every path against torch's own vectors directly.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "ops/cast.h"
#include "tensor_bytes.h"
#include "test_support.h"

namespace {

using namespace ckpt;
using ops::CastPath;

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

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// All 2^16 patterns, plus 5 more so the SIMD loops end in a scalar tail.
std::vector<uint8_t> all_16bit_patterns() {
  std::vector<uint16_t> v(65536 + 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(i);
  return as_bytes(v);
}

// Every exponent and sign, with mantissas at the edges and, at every bit position b, the exact
// tie (bit b alone below b+1), its neighbours, with the bit above odd and even: every rounding
// boundary of every narrower format, subnormal targets included.
std::vector<uint32_t> special_f32_patterns() {
  std::vector<uint32_t> m = {0, 1, 2, 3, 0x7FFFFF, 0x7FFFFE, 0x400000, 0x3FFFFF, 0x400001, 0x7FF000, 0x7FE000};
  for (int b = 0; b < 22; ++b)
    for (uint32_t above : {0u, 1u, 3u})
      for (int d = -1; d <= 1; ++d) m.push_back(((above << (b + 1)) | (1u << b)) + static_cast<uint32_t>(d));
  for (uint32_t hi : {0x0u, 0x1u, 0x3Fu, 0x40u, 0x7Eu, 0x7Fu})  // bf16 ties under each top mantissa
    for (uint32_t lo : {0x7FFFu, 0x8000u, 0x8001u}) m.push_back((hi << 16) | lo);
  for (uint32_t hi : {0x0u, 0x1u, 0x1FFu, 0x200u, 0x3FEu, 0x3FFu})  // f16 ties under each top mantissa
    for (uint32_t lo : {0xFFFu, 0x1000u, 0x1001u}) m.push_back((hi << 13) | lo);
  std::vector<uint32_t> out;
  for (uint32_t sign : {0u, 0x80000000u})
    for (uint32_t e = 0; e < 256; ++e)
      for (uint32_t mm : m) out.push_back(sign | (e << 23) | (mm & 0x7FFFFF));
  return out;
}

std::vector<uint64_t> special_f64_patterns() {
  std::vector<uint64_t> out;
  // Exponents around the f32 range (both subnormal and overflow edges) and the extremes.
  std::vector<uint64_t> exps;
  for (uint64_t e = 1023 - 160; e <= 1023 + 130; ++e) exps.push_back(e);
  for (uint64_t e : {0ull, 1ull, 2046ull, 2047ull}) exps.push_back(e);
  for (uint64_t sign : {0ull, 1ull << 63})
    for (uint64_t e : exps)
      for (int b = 0; b < 52; b += 1)
        for (uint64_t above : {0ull, 1ull})
          for (int d = -1; d <= 1; ++d) {
            uint64_t mm = (((above << (b + 1)) | (1ull << b)) + static_cast<uint64_t>(d)) & ((1ull << 52) - 1);
            out.push_back(sign | (e << 52) | mm);
          }
  return out;
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
  std::mt19937 rng(12345);
  std::vector<uint32_t> v(10'000'003);
  for (auto& x : v) x = rng();
  const auto in = as_bytes(v);
  for (DType to : {DType::F16, DType::BF16}) expect_path_matches_reference(GetParam(), DType::F32, to, in);
}

TEST_P(CastPaths, F64PatternsSpecialAndRandom) {
  auto v = special_f64_patterns();
  std::mt19937_64 rng(777);
  for (int k = 0; k < 1'000'000; ++k) v.push_back(rng());
  // Random values inside the f32 range too (random bits are mostly far outside it).
  std::uniform_int_distribution<uint64_t> exp(1023 - 150, 1023 + 129);
  for (int k = 0; k < 1'000'000; ++k) v.push_back((rng() & 0x800FFFFFFFFFFFFFull) | (exp(rng) << 52));
  const auto in = as_bytes(v);
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
  EXPECT_EQ(paths.size(), 1u + (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) +
                              (__builtin_cpu_supports("avx512f") ? 1u : 0u));
}

}  // namespace
