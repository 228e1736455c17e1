// The safetensors dtype table: every dtype of the reference implementation, in its enum order
// (which the writer's tensor ordering depends on), with bit widths and torch names.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt {

// Declaration order == `enum Dtype` in huggingface/safetensors tensor.rs (the writer sorts by it).
enum class DType : uint8_t {
  BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ,
  I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64,
};

enum class DTypeKind : uint8_t { kBool, kUnsigned, kSigned, kFloat, kComplex };

struct DTypeInfo {
  DType dtype;
  std::string_view name;        // safetensors header name, case-sensitive ("BF16")
  unsigned bits;                // bits per element (4 for F4, 6 for F6_*)
  DTypeKind kind;
  std::string_view torch_name;  // "bfloat16" (torch.<name>); empty when torch has none
};

const DTypeInfo& dtype_info(DType t);
std::span<const DTypeInfo> all_dtypes();
std::optional<DType> dtype_from_name(std::string_view safetensors_name);
std::optional<DType> dtype_from_torch_name(std::string_view torch_name);  // "float8_e4m3fn"
// Short user-facing names accepted on the command line: bf16, f16/fp16/half, f32/fp32/float...
std::optional<DType> dtype_from_user_name(std::string_view name);

inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
inline unsigned dtype_bits(DType t) { return dtype_info(t).bits; }

// numel for a shape (1 for a scalar); nullopt on overflow.
std::optional<uint64_t> checked_numel(std::span<const uint64_t> shape);
// Byte size of `numel` elements; nullopt when numel*bits overflows or is not a whole number of
// bytes (the reference reader's MisalignedSlice rule).
std::optional<uint64_t> checked_nbytes(DType t, uint64_t numel);

std::string shape_to_string(std::span<const uint64_t> shape);

}  // namespace ckpt
