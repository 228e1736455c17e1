// `ckpt validate DST --against SRC`: the phase that runs both checkpoints on the same token ids
// through the reference forward (lib/model/compare.h) and records every threshold broken as a
// failure naming the first layer and Linear (and, for a TP output, the rank) that disagree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/compare.h"
#include "validate/validate.h"

namespace ckpt::validate {

struct AgainstOptions {
  std::string source;         // SRC directory
  std::string ids_file;       // token ids (safetensors/JSON/NPY); empty: text, else seeded ids
  std::string text;           // a prompt, tokenized by the source's tokenizer (one sequence)
  uint64_t seq_len = 32, samples = 4;
  uint64_t seed = 1;
  model::CompareOptions compare;
};

// Adds phase "against (cpu)"; returns the comparison (nullopt when it could not run).
std::optional<model::Comparison> run_against_phase(const Prepared& prepared, const AgainstOptions& options, Report& report);

}  // namespace ckpt::validate
