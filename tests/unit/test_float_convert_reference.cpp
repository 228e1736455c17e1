// The scalar cast references against torch's own results: all 65,536 patterns of each 16-bit
// source (testdata/numerics/cast16) and torch's f32/f64 special + random vectors (cast32), bit for
// bit, NaNs included.
#include <gtest/gtest.h>

#include "ops/float_convert.h"
#include "tensor_bytes.h"
#include "test_support.h"

namespace {

using namespace ckpt;
using test::load_tensor_bytes;

template <typename In, typename Out, typename F>
void expect_all_match(const std::string& file, const char* input, const char* output, F convert) {
  auto in = load_tensor_bytes(file, input).as<In>();
  auto want = load_tensor_bytes(file, output).as<Out>();
  ASSERT_EQ(in.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    Out got = convert(in[i]);
    if (got != want[i] && bad++ < 8)
      ADD_FAILURE() << output << ": input 0x" << std::hex << uint64_t(in[i]) << " got 0x" << uint64_t(got)
                    << " torch 0x" << uint64_t(want[i]);
  }
  EXPECT_EQ(bad, 0u) << output;
}

std::string cast16() { return test::testdata("numerics/cast16.safetensors"); }
std::string cast32() { return test::testdata("numerics/cast32.safetensors"); }

TEST(FloatConvertReference, AllBF16Patterns) {
  expect_all_match<uint16_t, uint32_t>(cast16(), "bf16_all", "bf16_to_f32", [](uint16_t h) { return ops::f32_bits(ops::bf16_to_f32(h)); });
  expect_all_match<uint16_t, uint16_t>(cast16(), "bf16_all", "bf16_to_f16", ops::bf16_to_f16);
}

TEST(FloatConvertReference, AllF16Patterns) {
  expect_all_match<uint16_t, uint32_t>(cast16(), "f16_all", "f16_to_f32", [](uint16_t h) { return ops::f32_bits(ops::f16_to_f32(h)); });
  expect_all_match<uint16_t, uint16_t>(cast16(), "f16_all", "f16_to_bf16", ops::f16_to_bf16);
}

TEST(FloatConvertReference, TorchF32Vectors) {
  auto bf = [](uint32_t u) { return ops::f32_to_bf16(ops::f32_from_bits(u)); };
  auto h = [](uint32_t u) { return ops::f32_to_f16(ops::f32_from_bits(u)); };
  expect_all_match<uint32_t, uint16_t>(cast32(), "f32_in", "f32_to_bf16", bf);
  expect_all_match<uint32_t, uint16_t>(cast32(), "f32_in", "f32_to_f16", h);
}

TEST(FloatConvertReference, TorchF64Vectors) {
  auto f = [](uint64_t u) { return ops::f32_bits(ops::f64_to_f32(ops::f64_from_bits(u))); };
  auto bf = [](uint64_t u) { return ops::f64_to_bf16(ops::f64_from_bits(u)); };
  auto h = [](uint64_t u) { return ops::f64_to_f16(ops::f64_from_bits(u)); };
  expect_all_match<uint64_t, uint32_t>(cast32(), "f64_in", "f64_to_f32", f);
  expect_all_match<uint64_t, uint16_t>(cast32(), "f64_in", "f64_to_bf16", bf);
  expect_all_match<uint64_t, uint16_t>(cast32(), "f64_in", "f64_to_f16", h);
}

}  // namespace
