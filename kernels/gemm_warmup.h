// The allocate, warm-up and graph phases for one target whose files are on the GPU: every Linear
// weight runs through the GEMM its format needs —
//   bf16 / f16 / f32 weights:          cuBLAS (cublasGemmEx, float accumulation, no TF32);
//   FP8 E4M3, per-tensor scale:         cuBLASLt FP8 (E4M3 x E4M3, scale pointers, bf16/f16 out);
//   FP8 per-channel or block scales:    dequantize to the activation dtype, then cuBLAS (cuBLASLt
//                                       has no such scale mode in the path used here);
//   INT4 (GPTQ, AWQ, compressed-tensors): dequantize the loaded bytes in their stored layout to
//                                       float32 (exact), then a float32 cuBLAS GEMM (the Marlin
//                                       W4A16 kernel is issue 14's);
// the result is compared with a float64 reference (cublasDgemm on the dequantized weights) and
// checked finite; then the whole sequence is captured as one CUDA graph per batch size,
// replayed, timed and checked again.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "device_loader.h"
#include "gemm_kernels.h"
#include "validate/report.h"
#include "validate/targets.h"

namespace ckpt::cuda {

// What the dequantize kernels (gemm_kernels.h) read for `lw` whose tensors' bytes are on the
// device at `device(tensor)`: the element type, the FP8 scale layout, or the INT4 format's arrays.
DequantArgs dequant_args(const validate::LinearWeight& lw, const std::function<const void*(const TensorRef&)>& device);

class GemmWarmup {
 public:
  GemmWarmup(const validate::Target& target, const std::vector<LoadedFile>& files, std::vector<int> batch_sizes);
  ~GemmWarmup();
  GemmWarmup(const GemmWarmup&) = delete;
  GemmWarmup& operator=(const GemmWarmup&) = delete;

  void allocate(validate::PhaseScope& scope);  // workspace, KV cache, activations, outputs, references
  void warm_up(validate::PhaseScope& scope);   // eager GEMMs at the largest batch vs the reference
  void graphs(validate::PhaseScope& scope);    // capture + replay per batch size, checked again

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckpt::cuda
