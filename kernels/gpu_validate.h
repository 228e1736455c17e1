// The GPU phases of `ckpt validate`, run on what the CPU phases prepared (lib/validate): for each
// target (each TP rank), load its files into GPU memory through pinned buffers on several
// streams, check every digest on the GPU, allocate workspace and a KV cache, run every Linear
// weight through the GEMM its format needs against a float64 reference, and capture and replay a
// CUDA graph per batch size. Ranks run on their own GPUs at once when several are listed.
#pragma once

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

// Adds the GPU phases of every target to `report` (failures included).
void run_gpu_phases(validate::Prepared& prepared, validate::Report& report, const GpuValidateOptions& options);

}  // namespace ckpt::cuda
