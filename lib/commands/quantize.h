// `ckpt quantize --fp8`: FP8 E4M3FN checkpoints in the formats engines load unchanged
// (vllm/model_executor/layers/quantization/fp8.py; DeepSeek-V3 README_WEIGHTS.md for blocks):
//   native tensor  <p>.weight F8_E4M3 + <p>.weight_scale F32 scalar; quant_method "fp8" (vLLM, SGLang)
//   native block   <p>.weight + <p>.weight_scale_inv F32 [ceil(N/bn), ceil(K/bk)], weight_block_size
//                  (DeepSeek-V3 / Qwen3-FP8 / transformers FineGrainedFP8)
//   compressed-tensors "float-quantized" (llm-compressor): <p>.weight + <p>.weight_scale in the
//                  weight's dtype, [1] / [N, 1] / block grid; config_groups.group_0, ignore list
// and `ckpt quantize --int4` (RTN W4A16, ops/int4_quant.h) in the GPTQ, AWQ and compressed-tensors
// pack-quantized layouts (quant/scheme.h lists each format's tensors and config).
// Which tensors are Linear weights comes from the architecture's recipe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "commands/pad_intermediate.h"
#include "ops/fp8_producers.h"
#include "ops/int4_producers.h"
#include "plan/plan.h"
#include "quant/scheme.h"

namespace ckpt {

// --scheme tensor|block|channel
std::optional<quant::Granularity> fp8_granularity_from_name(const std::string& name);

struct QuantizeOptions {
  quant::Method method = quant::Method::kFp8;  // --fp8 or --int4
  // --int4: --group-size (128, 64, 32, or -1 for one group spanning K) and --sym / --asym (default:
  // symmetric, except AWQ, which always has zero points). Asymmetric GPTQ is written as
  // checkpoint_format gptq_v2 (v1's stored zero - 1 cannot hold a zero of 0).
  int64_t group_size = 128;
  std::optional<bool> symmetric;
  quant::Granularity granularity = quant::Granularity::kTensor;
  uint64_t block_rows = 128, block_cols = 128;  // --block NxK (granularity block)
  // FP8 default: native for tensor and block, compressed-tensors for channel (the only format that
  // has per-channel FP8). INT4 default: gptq.
  std::optional<quant::Format> format;
  // Globs ('*' = any run) over module names ("model.layers.0.mlp.down_proj") or tensor names.
  std::vector<std::string> ignore;
  std::string recipe_path;                  // empty: the recipe for the checkpoint's architecture
  std::shared_ptr<const Fp8Engine> engine;        // --fp8: where the math runs (null: the CPU)
  std::shared_ptr<const Int4Engine> int4_engine;  // --int4 RTN: likewise
  // --int4 --layout marlin: the Linears' tensors as `ckpt marlin` relays them out (commands/marlin.h),
  // in the same pass: the bytes of `ckpt quantize` then `ckpt marlin`.
  bool marlin_layout = false;
  // --int4 --pad-intermediate[=TP] (0: off): the MLP intermediate size zero-padded
  // (commands/pad_intermediate.h) to the next multiple of TP x lcm(group size, 128), the size
  // every rank of TP-way tensor parallelism can take in the format and in vLLM's Marlin path
  // (K/tp % 128, N/tp % 64, K/tp % group): what Qwen did for its 72B GPTQ/AWQ releases.
  uint64_t pad_intermediate_tp = 0;
};

struct QuantizePlan {
  Plan plan;
  quant::Scheme scheme;  // what was written
  std::vector<std::shared_ptr<Fp8Quantization>> quantized;
  std::vector<std::shared_ptr<const Int4Quantization>> int4;
  // Every quantized Linear's weight shape [N, K] and whether engines split it by output rows
  // (column-parallel) or by inputs (row-parallel): the --json TP compatibility table.
  struct Linear {
    std::string name;
    uint64_t n = 0, k = 0;
    bool column = true;
  };
  std::vector<Linear> linears;
  std::vector<std::string> not_converted;  // modules listed in the config as left unquantized
  bool copied = false;                      // the source already had this exact quantization
  std::optional<IntermediatePadding> padding;  // --pad-intermediate, when it padded
  uint64_t bytes_before = 0;
};

QuantizePlan plan_quantize(const Checkpoint& ck, const QuantizeOptions& options);

// After execution: each quantized tensor's scales and error, and the bytes before/after; for INT4
// also the TP compatibility table: for tp 1, 2, 4, 8 whether every Linear's per-rank shape meets
// vLLM's Marlin constraints (marlin_utils.verify_marlin_supports_shape: N/tp % 64, K/tp % 128,
// K/tp % group), naming the first that fails.
ojson quantize_report(const QuantizePlan& qp);
// One line for the terminal.
std::string quantize_summary_line(const QuantizePlan& qp);

}  // namespace ckpt
