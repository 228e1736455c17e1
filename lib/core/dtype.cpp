#include "core/dtype.h"

#include <array>

namespace ckpt {

namespace {
using K = DTypeKind;
constexpr std::array<DTypeInfo, 22> kTable = {{
    {DType::BOOL, "BOOL", 8, K::kBool, "bool"},
    {DType::F4, "F4", 4, K::kFloat, "float4_e2m1fn_x2"},
    {DType::F6_E2M3, "F6_E2M3", 6, K::kFloat, ""},
    {DType::F6_E3M2, "F6_E3M2", 6, K::kFloat, ""},
    {DType::U8, "U8", 8, K::kUnsigned, "uint8"},
    {DType::I8, "I8", 8, K::kSigned, "int8"},
    {DType::F8_E5M2, "F8_E5M2", 8, K::kFloat, "float8_e5m2"},
    {DType::F8_E4M3, "F8_E4M3", 8, K::kFloat, "float8_e4m3fn"},
    {DType::F8_E8M0, "F8_E8M0", 8, K::kFloat, "float8_e8m0fnu"},
    {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8, K::kFloat, "float8_e4m3fnuz"},
    {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8, K::kFloat, "float8_e5m2fnuz"},
    {DType::I16, "I16", 16, K::kSigned, "int16"},
    {DType::U16, "U16", 16, K::kUnsigned, "uint16"},
    {DType::F16, "F16", 16, K::kFloat, "float16"},
    {DType::BF16, "BF16", 16, K::kFloat, "bfloat16"},
    {DType::I32, "I32", 32, K::kSigned, "int32"},
    {DType::U32, "U32", 32, K::kUnsigned, "uint32"},
    {DType::F32, "F32", 32, K::kFloat, "float32"},
    {DType::C64, "C64", 64, K::kComplex, "complex64"},
    {DType::F64, "F64", 64, K::kFloat, "float64"},
    {DType::I64, "I64", 64, K::kSigned, "int64"},
    {DType::U64, "U64", 64, K::kUnsigned, "uint64"},
}};

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < kTable.size(); ++i)
    if (static_cast<size_t>(kTable[i].dtype) != i) return false;
  return true;
}
static_assert(table_in_enum_order(), "kTable must follow the DType declaration order");
}  // namespace

const DTypeInfo& dtype_info(DType t) { return kTable[static_cast<size_t>(t)]; }

std::span<const DTypeInfo> all_dtypes() { return kTable; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& d : kTable)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch_name(std::string_view name) {
  if (name.empty()) return std::nullopt;
  for (const auto& d : kTable)
    if (d.torch_name == name) return d.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_user_name(std::string_view n) {
  if (n == "bf16" || n == "bfloat16") return DType::BF16;
  if (n == "f16" || n == "fp16" || n == "half" || n == "float16") return DType::F16;
  if (n == "f32" || n == "fp32" || n == "float" || n == "float32") return DType::F32;
  if (n == "f64" || n == "fp64" || n == "double" || n == "float64") return DType::F64;
  if (auto t = dtype_from_name(n)) return t;
  return dtype_from_torch_name(n);
}

std::optional<uint64_t> checked_numel(std::span<const uint64_t> shape) {
  uint64_t n = 1;
  for (uint64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

std::optional<uint64_t> checked_nbytes(DType t, uint64_t numel) {
  uint64_t bits;
  if (__builtin_mul_overflow(numel, uint64_t{dtype_bits(t)}, &bits)) return std::nullopt;
  if (bits % 8 != 0) return std::nullopt;
  return bits / 8;
}

std::string shape_to_string(std::span<const uint64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace ckpt
