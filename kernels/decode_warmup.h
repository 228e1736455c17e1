// The allocate, warm-up and graph phases of `ckpt validate` on the GPU, done as a serving engine
// does them at start-up, on the model runtime (runtime/gpu_forward.h) — one model for the whole
// layout (a tensor/pipeline-parallel output runs its ranks in turn on one GPU, as the runtime
// does):
//   allocate: the model described from config.json and the loaded checkpoint (model::Model), its
//             weights uploaded in their device forms — dense and FP8 weights copied on the GPU
//             from the load's verified copy (resident_tensors.h) where it is there and the GPU
//             holds both, the rest (INT4, Marlin, what did not fit) from the host — a KV cache for the largest warm-up batch
//             and min(2048, max_position_embeddings) tokens (fewer where the free memory holds
//             fewer, as engines size it), the decode step's workspace;
//   warm-up:  one real decode step of the model at every warm-up batch size, run eagerly (every
//             Linear through the path its format takes: bf16/f16/f32 and FP8 in the runtime's
//             kernels, INT4 dequantized in registers, Marlin through the Marlin W4A16 GEMM), its
//             logits checked finite; non-finite logits are located on the CPU (the first Linear
//             whose dequantized weight is not finite);
//   graphs:   the decode step captured in a CUDA graph per batch size, replayed, its logits equal
//             to the eager step's bit for bit, capture / instantiate / replay timed.
// A model the runtime cannot compute (an architecture it does not implement, model::Model::load's
// Errc::kUnsupported), or whose weights do not fit the one GPU the runtime runs every rank on,
// gets no warm-up at all: allocate says why and is skipped, and the caller reports that the GPU
// phases could not all run — never a stand-in for the decode step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "resident_tensors.h"
#include "validate/report.h"
#include "validate/targets.h"

namespace ckpt::cuda {

class DecodeWarmup {
 public:
  // `resident`: the load's device copies of the layout's files (may be null or empty); allocate()
  // releases them once the runtime holds its own.
  DecodeWarmup(const validate::Layout& layout, std::vector<int> batch_sizes, ResidentTensors* resident = nullptr);
  ~DecodeWarmup();
  DecodeWarmup(const DecodeWarmup&) = delete;
  DecodeWarmup& operator=(const DecodeWarmup&) = delete;

  void allocate(validate::PhaseScope& scope);
  // Why the runtime cannot run this model ("" when it can); set by allocate().
  const std::string& unsupported() const;
  bool ready() const;  // allocate() succeeded
  void warm_up(validate::PhaseScope& scope);
  void graphs(validate::PhaseScope& scope);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckpt::cuda
