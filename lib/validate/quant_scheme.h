// The quantization a checkpoint declares in config.json's quantization_config (specs/
// quant_formats.md §1): vLLM's native "fp8" (per-tensor, or 128x128-style blocks with
// weight_block_size) and compressed-tensors "float-quantized" (tensor, channel or block
// strategy), with the list of modules left unquantized.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/strict_json.h"

namespace ckpt::validate {

enum class QuantMethod { kNone, kFp8, kCompressedTensors };

// How one FP8 weight's scale is laid out.
enum class ScaleLayout { kPerTensor, kPerChannel, kBlock };
const char* scale_layout_name(ScaleLayout l);

struct QuantScheme {
  QuantMethod method = QuantMethod::kNone;
  std::string method_name;              // as written in the config
  std::optional<ScaleLayout> layout;    // declared weight scale layout (nullopt: none declared)
  uint64_t block_n = 0, block_k = 0;    // for kBlock
  std::vector<std::string> ignore;      // modules left unquantized ("re:" prefix = regex)

  // True when `module` (a weight name without ".weight") is in the ignore list: an exact match,
  // with or without a leading "model.", or a "re:" regular expression matching it whole.
  bool ignores(const std::string& module) const;
};

// Reads config.json's quantization_config. `config_label` names the file in errors; a config
// this runtime cannot run (INT4, unknown methods, malformed fields) is an error naming the field.
QuantScheme parse_quant_scheme(const ojson* config, const std::string& config_label);

}  // namespace ckpt::validate
