// The GPU phases of `ckpt validate`, run on what the CPU phases prepared (lib/validate): for each
// target (each TP rank), load its files into GPU memory through pinned buffers on several
// streams and check every digest on the GPU (ranks on their own GPUs at once when several are
// listed; each rank's device copy is released after its check); then, once for the whole model on
// the first GPU, what a serving engine does at start-up (decode_warmup.h): the model runtime's
// weights and KV cache allocated, a real decode step at every warm-up batch size, and the step
// captured in a CUDA graph per batch size and replayed.
#pragma once

#include <string>
#include <vector>

#include "device_loader.h"
#include "validate/validate.h"

namespace ckpt::cuda {

struct GpuValidateOptions {
  std::vector<int> batch_sizes = {1, 2, 4, 8, 16, 32};
  std::vector<int> gpus;  // device ordinals; empty: device 0
  IoMode io = IoMode::kPosix;
  // The load phase's name in the table: "load (shm)" for a staged copy (validate --from-shm), so
  // the multi-instance case reads apart from a load off the disk.
  std::string load_phase = "load";
};

struct GpuPhasesResult {
  // Why the model runtime cannot run this model (an architecture it does not implement): no
  // warm-up or graph phase ran. Empty when they ran (or a load failure stopped them).
  std::string runtime_unsupported;
};

// Adds the GPU phases to `report` (failures included).
GpuPhasesResult run_gpu_phases(validate::Prepared& prepared, validate::Report& report, const GpuValidateOptions& options);

}  // namespace ckpt::cuda
