// The decoder forward on one GPU, float32 throughout: every Linear's weight dequantized once (by
// the same reference the CPU forward uses) to float32 on the device, float32 cuBLAS GEMMs (no
// TF32), and the kernels of forward_kernels.cu following the CPU reference's formulas, so its
// logits match lib/model/cpu_forward.h to float32 rounding. A tensor-parallel model runs its
// ranks in turn on this GPU, partial sums added in rank order, vocab padding dropped.
//
// MoE layers route on the host with the reference's route() from router logits computed here.
// This is the correctness path of the CUDA runtime. Not here yet: the bf16/f16 and cuBLASLt FP8
// GEMM paths, device-side routing, and the decode step captured in CUDA graphs.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model_weights.h"

namespace ckpt::cuda {

class GpuForward {
 public:
  // Uploads the model to the current device and allocates a KV cache for `batch` sequences of
  // up to `capacity` tokens.
  GpuForward(const model::Model& m, uint64_t batch, uint64_t capacity);
  ~GpuForward();
  GpuForward(const GpuForward&) = delete;
  GpuForward& operator=(const GpuForward&) = delete;

  // As CpuForward::forward: `tokens` new ids per sequence ([batch][tokens]); logits [batch*tokens][vocab].
  std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens);
  uint64_t length() const;
  void reset();
  uint64_t kv_cache_bytes() const;
  uint64_t weight_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckpt::cuda
