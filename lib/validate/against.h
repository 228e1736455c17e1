// `ckpt validate DST --against SRC`: the phase that runs both checkpoints on the same token ids
// (lib/model/compare.h) and records every threshold broken as a failure naming the first layer and
// Linear (and, for a TP output, the rank) that disagree. The forwards run on the GPU where the CLI
// supplies them (kernels/runtime/gpu_step_forward.h; phase "against (cuda)"), else on the CPU
// reference (phase "against (cpu)"); the phase's details say which ran and where the time went.
#pragma once

#include <cstdint>
#include <functional>
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
  // The forwards on a device other than the CPU (lib/ has no CUDA: the CLI sets the CUDA ones
  // where a GPU is present), KV caches of `capacity` tokens for `batch` sequences; empty: the CPU
  // reference. When they cannot be built (a ckpt::Error, e.g. out of device memory) the phase
  // runs on the CPU and says why.
  std::function<model::ComparedForwards(const model::Model& src, const model::Model& dst, uint64_t batch,
                                        uint64_t capacity)>
      device_forwards;
  std::string device_name = "cuda";  // of device_forwards
};

// Adds phase "against (cuda)" or "against (cpu)"; returns the comparison (nullopt when it could not run).
std::optional<model::Comparison> run_against_phase(const Prepared& prepared, const AgainstOptions& options, Report& report);

}  // namespace ckpt::validate
