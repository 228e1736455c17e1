// Zero-padding a gated MLP's intermediate size (issue 13): gate_proj and up_proj [I, H] gain zero
// rows, down_proj [H, I] zero columns (and gate/up biases zeros), config.json's
// intermediate_size becomes the padded size and the padding is recorded. Exact for a gated MLP:
// a padded channel computes act(0 + b_g) * (0 + 0) = 0 from up's zero row (any activation with
// a finite value), and down's zero column multiplies it by 0 again, so the output is unchanged
// bit for bit. This is the fix Qwen documents for tensor parallelism under GPTQ/AWQ/Marlin
// (QwenLM/Qwen3-VL#231, QwenLM/Qwen3#360: Qwen2-72B's 29568 padded to 29696 so that every rank of
// tp 8 gets a multiple of 128 inputs).
#pragma once

#include <cstdint>
#include <optional>

#include "checkpoint/checkpoint.h"

namespace ckpt {

struct IntermediatePadding {
  uint64_t from = 0, to = 0, multiple = 0;
  uint64_t tensors = 0;  // tensors given padded views
};

// The size `intermediate` becomes: the next multiple of `multiple` (itself when it is one).
uint64_t padded_intermediate(uint64_t intermediate, uint64_t multiple);

// Gives every model.layers.<i>.mlp.{gate,up,down}_proj weight (and gate/up bias) of `ck` a view
// zero-padded to the next multiple of `multiple`, and sets config.json's intermediate_size and
// "ckpt_intermediate_padding" {original_intermediate_size, intermediate_size, multiple, why}.
// nullopt (nothing changed) when the size is already a multiple. Refused (kUnsupported, naming
// the tensor or config key) for what it cannot pad exactly: no intermediate_size, MoE experts,
// a fused gate_up_proj, an MLP tensor whose shape is not [I, H] / [H, I].
std::optional<IntermediatePadding> pad_intermediate(Checkpoint& ck, uint64_t multiple, const std::string& why);

}  // namespace ckpt
