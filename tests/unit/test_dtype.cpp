#include <gtest/gtest.h>

#include "core/dtype.h"
#include "core/sizes.h"

using namespace ckpt;

TEST(DType, TableHasEveryReferenceDtypeWithBitsAndTorchNames) {
  struct Expect {
    const char* name;
    unsigned bits;
    const char* torch;
  };
  const Expect all[] = {
      {"BOOL", 8, "bool"}, {"F4", 4, "float4_e2m1fn_x2"}, {"F6_E2M3", 6, ""}, {"F6_E3M2", 6, ""},
      {"U8", 8, "uint8"}, {"I8", 8, "int8"}, {"F8_E5M2", 8, "float8_e5m2"}, {"F8_E4M3", 8, "float8_e4m3fn"},
      {"F8_E8M0", 8, "float8_e8m0fnu"}, {"F8_E4M3FNUZ", 8, "float8_e4m3fnuz"}, {"F8_E5M2FNUZ", 8, "float8_e5m2fnuz"},
      {"I16", 16, "int16"}, {"U16", 16, "uint16"}, {"F16", 16, "float16"}, {"BF16", 16, "bfloat16"},
      {"I32", 32, "int32"}, {"U32", 32, "uint32"}, {"F32", 32, "float32"}, {"C64", 64, "complex64"},
      {"F64", 64, "float64"}, {"I64", 64, "int64"}, {"U64", 64, "uint64"},
  };
  ASSERT_EQ(all_dtypes().size(), std::size(all));
  for (size_t i = 0; i < std::size(all); ++i) {
    const DTypeInfo& d = all_dtypes()[i];
    EXPECT_EQ(d.name, all[i].name);
    EXPECT_EQ(d.bits, all[i].bits) << all[i].name;
    EXPECT_EQ(d.torch_name, all[i].torch) << all[i].name;
    EXPECT_EQ(dtype_from_name(all[i].name), d.dtype);
  }
}

TEST(DType, NamesAreCaseSensitiveLikeTheReference) {
  EXPECT_FALSE(dtype_from_name("f32"));
  EXPECT_FALSE(dtype_from_name("F8_E4M3FN"));
  EXPECT_EQ(dtype_from_torch_name("float8_e4m3fn"), DType::F8_E4M3);
  EXPECT_EQ(dtype_from_user_name("fp16"), DType::F16);
  EXPECT_EQ(dtype_from_user_name("bf16"), DType::BF16);
}

TEST(DType, SubByteSizesMustBeWholeBytes) {
  EXPECT_EQ(checked_nbytes(DType::F4, 4), 2u);
  EXPECT_FALSE(checked_nbytes(DType::F4, 3));
  EXPECT_EQ(checked_nbytes(DType::F6_E2M3, 4), 3u);
  EXPECT_FALSE(checked_nbytes(DType::F64, UINT64_MAX / 8));
  const uint64_t big[] = {UINT64_MAX, 2};
  EXPECT_FALSE(checked_numel(big));
}

TEST(Sizes, DecimalAndBinaryUnits) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000ull);
  EXPECT_EQ(parse_byte_size("5GiB"), 5ull << 30);
  EXPECT_EQ(parse_byte_size("500mb"), 500'000'000ull);
  EXPECT_EQ(parse_byte_size("1.5GB"), 1'500'000'000ull);
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  // A bare unit letter is decimal, as llama.cpp's --split-max-size.
  EXPECT_EQ(parse_byte_size("5G"), 5'000'000'000ull);
  EXPECT_EQ(parse_byte_size("500m"), 500'000'000ull);
  EXPECT_EQ(parse_byte_size("2T"), 2'000'000'000'000ull);
  EXPECT_EQ(parse_byte_size("64K"), 64'000ull);
  EXPECT_FALSE(parse_byte_size("5Gi"));
  EXPECT_FALSE(parse_byte_size("5X"));
  EXPECT_FALSE(parse_byte_size("0"));
  EXPECT_FALSE(parse_byte_size("GB"));
  EXPECT_FALSE(parse_byte_size("5 parsecs"));
  EXPECT_FALSE(parse_byte_size("1.2.3GB"));
}

// Summaries: "1 tensor" / "2 tensors", and no "0.00 GB/s" for a tiny or instant run (issue 12).
TEST(Sizes, CountsInTheRightNumberAndRatesOnlyWhenMeasurable) {
  EXPECT_EQ(count_of(0, "tensor"), "0 tensors");
  EXPECT_EQ(count_of(1, "tensor"), "1 tensor");
  EXPECT_EQ(count_of(21, "tensor"), "21 tensors");
  EXPECT_EQ(count_of(1, "entry", "entries"), "1 entry");
  EXPECT_EQ(count_of(3, "entry", "entries"), "3 entries");
  EXPECT_EQ(format_rate(0, 1.0), "");
  EXPECT_EQ(format_rate(64, 0.0), "");
  EXPECT_EQ(format_rate(64, 1e-6), "");
  EXPECT_EQ(format_rate(64, 0.5), "128 B/s");
  EXPECT_EQ(format_rate(512'000, 1.0), "512.00 KB/s");
  EXPECT_EQ(format_rate(2'150'000'000, 1.0), "2.15 GB/s");
}
