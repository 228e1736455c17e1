// The one quantization model of a checkpoint: which method and format its quantized Linears use,
// at which granularity, with which symmetry and act-order, and which tensors (names, dtypes,
// shapes) each quantized Linear owns. config.json's `quantization_config` (and GPTQ's
// `quantize_config.json`) are read here and written here, nowhere else; quantize, shard, merge,
// cast, inspect and validate all take a Scheme.
//
// Formats and the engines' sources they follow:
//   fp8 native (vLLM model_executor/layers/quantization/fp8.py Fp8Config.from_config):
//       quant_method "fp8", activation_scheme, optional weight_block_size [bn, bk];
//       <p>.weight F8_E4M3 [N, K] + <p>.weight_scale F32 [] (tensor) or
//       <p>.weight_scale_inv F32 [ceil(N/bn), ceil(K/bk)] (block); ignored_layers /
//       modules_to_not_convert.
//   compressed-tensors (vllm-project/compressed-tensors quantization/quant_config.py,
//       quant_args.py; llm-compressor's presets): quant_method "compressed-tensors", format
//       "float-quantized" (FP8: <p>.weight + <p>.weight_scale in the weight's dtype [1] / [N, 1] /
//       block grid) or "pack-quantized" (INT4: <p>.weight_packed I32 [N, ceil(K/8)],
//       <p>.weight_scale [N, G], <p>.weight_shape I64 [2], <p>.weight_zero_point I32
//       [ceil(N/8), G] when asymmetric); config_groups.*.weights {num_bits, type, strategy,
//       group_size, block_structure, symmetric, actorder}; ignore.
//   gptq (AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py pack; GPTQModel
//       gptqmodel/quantization/config.py; vLLM gptq.py / gptq_marlin.py): bits, group_size,
//       desc_act, sym, checkpoint_format "gptq" (v1, stored zero - 1) or "gptq_v2";
//       <p>.qweight I32 [K/8, N], <p>.qzeros I32 [G, N/8], <p>.scales F16 [G, N], <p>.g_idx I32 [K].
//   awq (AutoAWQ awq/models/_config.py, awq/modules/linear/gemm.py; vLLM awq.py): bits (w_bit),
//       group_size (q_group_size), zero_point, version "gemm"; <p>.qweight I32 [K, N/8],
//       <p>.qzeros I32 [G, N/8], <p>.scales F16 [G, N]; modules_to_not_convert.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/strict_json.h"
#include "ops/int4_quant.h"

namespace ckpt::quant {

enum class Method : uint8_t { kNone, kFp8, kInt4 };
enum class Format : uint8_t { kFp8Native, kCompressedTensors, kGptq, kAwq };
// kTensor: one scale per weight; kChannel: one per output row (INT4: group_size -1);
// kGroup: one per row and group of `group_size` inputs; kBlock: one per block_n x block_k tile.
enum class Granularity : uint8_t { kTensor, kChannel, kGroup, kBlock };

const char* format_name(Format f);            // "native", "compressed-tensors", "gptq", "awq"
const char* granularity_name(Granularity g);  // "tensor", "channel", "group", "block"

// What a tensor owned by a quantized Linear is.
enum class PartRole : uint8_t { kCodes, kScale, kZero, kGroupIndex, kShape, kInputScale };

struct Part {
  std::string suffix;  // after "<module>.": "weight", "weight_scale", "qweight", ...
  PartRole role;
  DType dtype;
  std::vector<uint64_t> shape;
};

struct Scheme {
  Method method = Method::kNone;
  Format format = Format::kFp8Native;
  std::string method_name;  // quant_method as written ("" for kNone)
  Granularity granularity = Granularity::kTensor;
  uint64_t group_size = 0;           // kGroup
  uint64_t block_n = 0, block_k = 0;  // kBlock
  bool symmetric = true;
  bool act_order = false;   // GPTQ desc_act / compressed-tensors actorder "group"
  bool gptq_v2 = false;     // GPTQ checkpoint_format "gptq_v2": zeros stored without the -1
  std::optional<std::string> activation_scheme;  // native fp8: "static" / "dynamic" as written
  std::vector<std::string> ignore;  // modules left unquantized ("re:" prefix = regular expression)

  bool quantized() const { return method != Method::kNone; }
  // True when `module` (a weight name without ".weight") is in the ignore list: an exact match,
  // with or without a leading "model.", or a "re:" regular expression matching it whole.
  bool ignores(const std::string& module) const;
  // "fp8 native block 128x128", "int4 gptq sym group 128", "none".
  std::string describe() const;
  // The tensors a quantized Linear with weight [n, k] of `weight_dtype` owns, codes first. Input
  // scales of static FP8 activations are not listed (they have no shape rule of their own).
  std::vector<Part> linear_parts(uint64_t n, uint64_t k, DType weight_dtype) const;
  // Whether the name's last component is one this scheme's Linears own (never "bias", and
  // never "weight" for INT4 formats, whose weight is not stored under that name).
  bool owns_suffix(const std::string& last_component) const;
  // For INT4: the ops layer's scheme (scale dtype: F16 for GPTQ/AWQ, the weight's otherwise).
  ops::Int4Scheme int4(DType weight_dtype) const;
  // For INT4: elements of K per group (group_size, or k for channel).
  uint64_t group_of(uint64_t k) const { return granularity == Granularity::kGroup ? group_size : k; }
};

// Reads config.json's quantization_config (`config` may be null or have none: kNone). A method
// or field ckpt does not understand is an error (kUnsupported) naming `label` and the field.
Scheme read_scheme(const ojson* config, const std::string& label);

// The quantization_config object for config.json, as the format's own tool writes it, with
// `not_converted` (the modules left unquantized) listed as its loaders expect.
ojson quantization_config(const Scheme& s, const std::vector<std::string>& not_converted);
// quantize_config.json for the formats whose tools write one (GPTQ: GPTQModel/AutoGPTQ write
// the same object there), else nullopt.
std::optional<std::string> quantize_config_file(const Scheme& s, const std::vector<std::string>& not_converted);
// config.json text with quantization_config set to `qc`: in key order when the file's keys are
// sorted (as transformers writes them), else at the end.
std::string config_with_quantization(const ojson& config, const ojson& qc);

}  // namespace ckpt::quant
