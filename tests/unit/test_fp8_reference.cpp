// The FP8 scalar references against torch's own results (testdata/numerics/fp8.safetensors).
#include <gtest/gtest.h>

#include <cmath>

#include "ops/fp8.h"
#include "tensor_bytes.h"
#include "test_support.h"

namespace {

using namespace ckpt;
using test::load_tensor_bytes;

std::string fp8_file() { return test::testdata("numerics/fp8.safetensors"); }

// torch's reference clamps first (x.clamp(-max, max).to(fp8)): our encode saturates by itself.
void expect_encode_matches(const char* name, uint8_t (*encode)(float)) {
  auto x = load_tensor_bytes(fp8_file(), "x").as<float>();
  auto want = load_tensor_bytes(fp8_file(), name).as<uint8_t>();
  ASSERT_EQ(x.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (encode(x[i]) != want[i] && bad++ < 5)
      ADD_FAILURE() << name << " x=" << x[i] << " got " << int(encode(x[i])) << " want " << int(want[i]);
  }
  EXPECT_EQ(bad, 0u);
}

void expect_decode_matches(const char* codes, const char* values, float (*decode)(uint8_t)) {
  auto in = load_tensor_bytes(fp8_file(), codes).as<uint8_t>();
  auto want = load_tensor_bytes(fp8_file(), values).as<uint32_t>();
  ASSERT_EQ(in.size(), 256u);
  for (size_t i = 0; i < in.size(); ++i)
    EXPECT_EQ(ops::f32_bits(decode(in[i])), want[i]) << codes << " byte " << int(in[i]);  // NaN bits too
}

TEST(Fp8Reference, E4M3FNEncodeMatchesTorch) { expect_encode_matches("e4m3fn", ops::f32_to_e4m3fn); }
TEST(Fp8Reference, E5M2EncodeMatchesTorch) { expect_encode_matches("e5m2", ops::f32_to_e5m2); }
TEST(Fp8Reference, E4M3FNDecodeMatchesTorch) {
  expect_decode_matches("e4m3fn_all", "e4m3fn_all_f32", ops::e4m3fn_to_f32);
}
TEST(Fp8Reference, E5M2DecodeMatchesTorch) { expect_decode_matches("e5m2_all", "e5m2_all_f32", ops::e5m2_to_f32); }

TEST(Fp8Reference, SaturatesAndKeepsNaN) {
  const float inf = INFINITY;
  EXPECT_EQ(ops::f32_to_e4m3fn(inf), 0x7E);
  EXPECT_EQ(ops::f32_to_e4m3fn(-inf), 0xFE);
  EXPECT_EQ(ops::f32_to_e4m3fn(1e30f), 0x7E);
  EXPECT_EQ(ops::f32_to_e4m3fn(464.0f), 0x7E);  // the tie between 448 and (NaN) 480 goes even
  EXPECT_EQ(ops::f32_to_e4m3fn(NAN), 0x7F);
  EXPECT_EQ(ops::f32_to_e4m3fn(-NAN), 0xFF);
  EXPECT_EQ(ops::f32_to_e5m2(inf), 0x7B);
  EXPECT_EQ(ops::f32_to_e5m2(61440.0f), 0x7B);
  EXPECT_EQ(ops::f32_to_e5m2(-1e30f), 0xFB);
  EXPECT_EQ(ops::f32_to_e5m2(NAN), 0x7F);
}

// Every code that is a number decodes and re-encodes to itself (-0 included).
TEST(Fp8Reference, RoundTripsEveryFiniteCode) {
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7F) != 0x7F) {
      EXPECT_EQ(ops::f32_to_e4m3fn(ops::e4m3fn_to_f32(uint8_t(b))), b) << b;
    }
    if ((b & 0x7F) < 0x7C) {
      EXPECT_EQ(ops::f32_to_e5m2(ops::e5m2_to_f32(uint8_t(b))), b) << b;
    }
  }
}

// Subnormal rounding from the spec: 1.5*2^-10 -> 2^-9 (code 1), 2^-10 -> 0 (tie to even).
TEST(Fp8Reference, SubnormalTies) {
  EXPECT_EQ(ops::f32_to_e4m3fn(std::ldexp(1.5f, -10)), 0x01);
  EXPECT_EQ(ops::f32_to_e4m3fn(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(ops::f32_to_e4m3fn(std::ldexp(3.0f, -10)), 0x02);  // 1.5 units: tie to even 2
  EXPECT_EQ(ops::f32_to_e4m3fn(1.0625f), 0x38);
  EXPECT_EQ(ops::f32_to_e4m3fn(1.1875f), 0x3A);
}

}  // namespace
