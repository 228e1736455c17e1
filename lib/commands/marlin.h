// `ckpt marlin SRC DST [--undo]`: an INT4 checkpoint (GPTQ sym/asym, with or without act-order;
// AWQ; compressed-tensors pack-quantized) written with its tensors exactly as vLLM holds them
// after process_weights_after_loading (gptq_marlin_repack / awq_marlin_repack,
// marlin_permute_scales, marlin_zero_points, marlin_sort_g_idx, marlin_permute_bias: vllm
// model_executor/layers/quantization/kernels/mixed_precision/marlin.py), and back.
//
// Per quantized Linear <m> (names kept from the source format: GPTQ/AWQ qweight, scales, qzeros,
// g_idx; compressed-tensors weight_packed, weight_scale, weight_zero_point, weight_g_idx):
//   codes   I32 [K/16, 2N]  Marlin tiles (ops/marlin_layout.h), K-rows in sorted g_idx order
//                           with act-order
//   scales  [G, N]          the source dtype, marlin_permute_scales (grouped or channelwise);
//                           compressed-tensors' [N, G] is transposed first, as vLLM does
//   zeros   I32 [G, N/8]    asymmetric only: marlin_zero_points of the unpacked zero points
//                           (GPTQ v1 stored + 1). Symmetric GPTQ's constant qzeros are dropped
//                           (vLLM passes an empty tensor); --undo writes them back.
//   g_idx   I32 [K]         act-order only: g_idx sorted (a stable sort: ties keep ascending k),
//   <m>.g_idx_sort_indices  I32 [K] the sort indices. Without act-order GPTQ's trivial g_idx
//                           (k / group) is dropped, as vLLM replaces it by an empty tensor.
//   bias    [N]             marlin_permute_bias (the channelwise scale permutation)
//   weight_shape            compressed-tensors: copied
// Everything else is copied. config.json's quantization_config becomes
//   {"quant_method": "ckpt_marlin", "layout": ..., "source_quantization_config": <the original>}
// — a quant_method no loader knows, so none mistakes the tiles for plain GPTQ — and GPTQ's
// quantize_config.json (which old AutoGPTQ loaders read) is folded into it and not written.
// --undo restores the source format: every tensor bit for bit, config.json's
// quantization_config and quantize_config.json as JSON values.
//
// Refused with the reason: shapes the repack or the GEMM cannot take (K % 16, N % 64, and the
// kernel's K % 128 and group sizes -1/32/64/128), a GPTQ v1 zero point of 16, act-order in an
// output sharded for tensor parallelism (shard after relayout is refused too: relayout each
// rank of an INT4 shard output instead, which is what vLLM's per-rank repack does).
#pragma once

#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "plan/plan.h"
#include "quant/scheme.h"

namespace ckpt {

inline constexpr const char* kMarlinQuantMethod = "ckpt_marlin";

struct MarlinOptions {
  bool undo = false;
  // compressed-tensors codes (and, for --undo, Marlin codes going back to compressed-tensors) of
  // one weight up to this size are read whole, once, into memory shared by its chunks: their
  // K-tiles are column stripes, which read stripe by stripe map the whole tensor again for every
  // 1 MB of output. Larger weights keep the stripe reads, so memory stays bounded.
  uint64_t whole_codes_max_bytes = 256ull << 20;
};

struct MarlinPlan {
  Plan plan;
  quant::Scheme source_scheme;  // the INT4 format the Marlin tensors come from / return to
  uint64_t linears = 0;         // quantized Linears relaid out
};

MarlinPlan plan_marlin(const Checkpoint& ck, const MarlinOptions& options);

// Whether config.json names a `ckpt marlin` output (quantization_config.quant_method ckpt_marlin).
bool is_marlin_config(const ojson* config);
// The INT4 scheme a Marlin checkpoint's tensors come from (source_quantization_config); a missing
// or non-INT4 source is an error naming `label`.
quant::Scheme marlin_source_scheme(const ojson& config, const std::string& label);

// One Marlin Linear's arrays back in its source format, array by array: what --undo writes for it,
// and what validate and the CPU runtime decode a Marlin Linear through (lib/model/linear.h).
struct MarlinLinearGeometry {
  ops::Int4Format format = ops::Int4Format::kGptq;  // the source format
  uint64_t n = 0, k = 0, groups = 1;
  int64_t group_size = -1;  // marlin_permute_scales' argument: -1 for channelwise
  int zero_offset = 0;      // GPTQ v1 qzeros: 1
};
MarlinLinearGeometry marlin_linear_geometry(const ops::Int4Scheme& source, uint64_t n, uint64_t k);
// The names a Marlin Linear's tensors keep from the source format (<module>.<suffix>).
struct MarlinTensorNames {
  std::string codes, scales, zeros, g_idx;
  std::string sort_indices = "g_idx_sort_indices";  // vLLM's layer.g_idx_sort_indices (act-order)
};
MarlinTensorNames marlin_tensor_names(quant::Format source);
// Marlin-permuted scales [G, N] (elem_bytes each) -> the source's array ([G, N]; compressed-tensors [N, G]).
std::vector<uint8_t> marlin_source_scales(const MarlinLinearGeometry& g, const uint8_t* scales, size_t elem_bytes);
// Marlin zero points I32 [G, N/8] -> the source's zero words (GPTQ qzeros with its offset, AWQ
// qzeros, compressed-tensors weight_zero_point).
std::vector<uint32_t> marlin_source_zeros(const MarlinLinearGeometry& g, const uint32_t* zero_points);
// Symmetric GPTQ's constant qzeros, which vLLM never reads (the relayout drops them).
std::vector<uint32_t> marlin_symmetric_gptq_zeros(const MarlinLinearGeometry& g);
// Act-order g_idx in checkpoint order from the sorted g_idx and its sort indices into `out`; the
// reason when `perm` is not a permutation of [0, K) ("" otherwise).
std::string marlin_source_g_idx(const int32_t* sorted, const int32_t* perm, uint64_t k, std::vector<int32_t>& out);
// GPTQ's trivial g_idx (k / group_size), which vLLM replaces by an empty tensor without act-order.
std::vector<int32_t> marlin_trivial_g_idx(const MarlinLinearGeometry& g);
// Marlin qweight I32 [K/16, 2N] -> the source's codes, whole tensor; `perm`: the act-order sort
// indices (null without act-order).
std::vector<uint32_t> marlin_source_codes(const MarlinLinearGeometry& g, const uint32_t* marlin, const int32_t* perm);

}  // namespace ckpt
