// ggml's tensor element types as GGUF files store them (ggml-org/ggml include/ggml.h `ggml_type`,
// src/ggml-common.h block structs) and the reference encoders that produce them from float32 rows:
// F16, BF16 and the blocks Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (Q5_0, Q5_1 and Q5_K
// because llama-quantize's Q4_K_M mix and its shape fallbacks use them), bit-identical with ggml's deterministic
// `quantize_row_*_ref` (src/ggml-quants.c) and its fp32 -> fp16/bf16 conversions (src/ggml-impl.h).
// Blocks run along a row (GGUF's ne[0]) and never cross it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ckpt::ops {

// Values are ggml's type ids as written in GGUF tensor infos; never renumber.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // ggml's type name, upper case ("Q4_K")
  uint32_t block;         // elements per block (1 for the float types)
  uint32_t block_bytes;   // bytes per block
};

const GgmlTypeInfo& ggml_type_info(GgmlType t);
std::span<const GgmlTypeInfo> all_ggml_types();
// Byte size of a tensor with ne[0] = row elements and `rows` rows; nullopt when the row is not a
// whole number of blocks or the size overflows.
std::optional<uint64_t> ggml_nbytes(GgmlType t, uint64_t row, uint64_t rows);

// ggml's float conversions for model files: fp32 -> fp16 round-to-nearest-even with NaN ->
// 0x7E00 | sign (ggml_compute_fp32_to_fp16), fp32 -> bf16 round-to-nearest-even with NaN made
// quiet (ggml_compute_fp32_to_bf16).
uint16_t ggml_fp32_to_fp16(float f);
uint16_t ggml_fp32_to_bf16(float f);

// Encodes n floats (a multiple of the type's block) into ggml_nbytes(t, n, 1) bytes, exactly as
// ggml's reference quantizer of that type (no importance matrix). F32 copies; F16/BF16 convert.
void encode_row_reference(GgmlType t, const float* x, uint8_t* out, uint64_t n);
// The same bytes by the fastest path this CPU has (AVX2/AVX-512 for the float types and Q8_0;
// the reference elsewhere). Tested against encode_row_reference.
void encode_row(GgmlType t, const float* x, uint8_t* out, uint64_t n);

}  // namespace ckpt::ops
