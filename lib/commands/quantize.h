// `ckpt quantize --fp8`: FP8 E4M3FN checkpoints in the formats engines load unchanged
// (specs/quant_formats.md §0-1):
//   native tensor  <p>.weight F8_E4M3 + <p>.weight_scale F32 scalar; quant_method "fp8" (vLLM, SGLang)
//   native block   <p>.weight + <p>.weight_scale_inv F32 [ceil(N/bn), ceil(K/bk)], weight_block_size
//                  (DeepSeek-V3 / Qwen3-FP8 / transformers FineGrainedFP8)
//   compressed-tensors "float-quantized" (llm-compressor): <p>.weight + <p>.weight_scale in the
//                  weight's dtype, [1] / [N, 1] / block grid; config_groups.group_0, ignore list
// Which tensors are Linear weights comes from the architecture's recipe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "ops/fp8_producers.h"
#include "plan/plan.h"
#include "quant/scheme.h"

namespace ckpt {

// --scheme tensor|block|channel
std::optional<quant::Granularity> fp8_granularity_from_name(const std::string& name);

struct QuantizeOptions {
  quant::Granularity granularity = quant::Granularity::kTensor;
  uint64_t block_rows = 128, block_cols = 128;  // --block NxK (granularity block)
  // Default: native for tensor and block, compressed-tensors for channel (the only format that
  // has per-channel FP8).
  std::optional<quant::Format> format;
  // Globs ('*' = any run) over module names ("model.layers.0.mlp.down_proj") or tensor names.
  std::vector<std::string> ignore;
  std::string recipe_path;                  // empty: the recipe for the checkpoint's architecture
  std::shared_ptr<const Fp8Engine> engine;  // null: the CPU
};

struct QuantizePlan {
  Plan plan;
  std::vector<std::shared_ptr<Fp8Quantization>> quantized;
  std::vector<std::string> not_converted;  // modules listed in the config as left unquantized
  bool copied = false;                      // the source already had this exact quantization
  uint64_t bytes_before = 0;
};

QuantizePlan plan_quantize(const Checkpoint& ck, const QuantizeOptions& options);

// After execution: each quantized tensor's scales and error, and the bytes before/after.
ojson quantize_report(const QuantizePlan& qp);
// One line for the terminal.
std::string quantize_summary_line(const QuantizePlan& qp);

}  // namespace ckpt
