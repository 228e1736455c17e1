// A Linear's weight kept on the device in its stored form, and y = x W^T with it: what the CUDA
// forward (gpu_forward.cpp) runs every Linear, embedding and lm_head through.
//
// Stored form (4 bytes a parameter would not fit an 8B model in 32 GB, and could not approach the
// weight-bytes / bandwidth floor of a decode step):
//  - f32 / f16 / bf16: the stored bytes as they are.
//  - FP8 E4M3: the codes as they are, the scales (per tensor, channel or block) as float32.
//  - INT4 (GPTQ, AWQ, compressed-tensors): ONE layout for all three, converted on the host at
//    upload through the formats' own decoder (ops::int4_unpack): K-packed nibbles [N][K/8 words,
//    padded to 16 bytes], float32 scales [N][G], uint8 zeros [N][G] (a byte: GPTQ v1 zeros read
//    back as 16), and act-order g_idx only where it is not k / G.
//  - Marlin (a `ckpt marlin` output, model::MarlinForm): the Marlin tensors as stored — qweight,
//    the permuted f16/bf16 scales, zero points, act-order's sorted g_idx and sort indices — run
//    by the Marlin W4A16 GEMM (kernels/marlin_gemm.h) at every row count: activations rounded to
//    the scales' 16-bit type, products on the tensor cores with float32 sums, the result rounded
//    to that type and widened (so it matches the float32 paths to that type's rounding, not to
//    float32's; an activation beyond the f16 range becomes Inf and shows as non-finite logits).
//    Float32 scales (compressed-tensors of an f32 model), which the kernel does not take: the
//    weight's float32 values, as below.
//  - A weight with no stored form (calib's value-only Linears): its float32 values.
// Apply: up to kSkinnyMaxRows rows the skinny kernel reads the weight once and dequantizes in
// registers; more rows dequantize the weight into a float32 scratch (sized by the caller for the
// largest Linear) and run a float32 cuBLAS GEMM (CUBLAS_COMPUTE_32F: no TF32). Both accumulate
// in float32 and match the CPU reference to float32 rounding.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cuda_check.h"
#include "marlin_gemm.h"
#include "resident_tensors.h"
#include "model/linear.h"
#include "runtime/linear_kernels.h"

namespace ckpt::cuda {

// What a Linear applies with: the stream and cuBLAS handle (bound to it), and the float32 scratch
// of the GEMM path (at least the largest N x K of the Linears it runs with more than
// kSkinnyMaxRows rows).
struct LinearContext {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  float* scratch = nullptr;
  uint64_t scratch_elems = 0;
  // The Marlin path's scratch (at least marlin_scratch_bytes for its Linears and rows) and the
  // SM count of the device (the Marlin GEMM's K split, hence its workspace, depends on it).
  uint8_t* marlin_scratch = nullptr;
  uint64_t marlin_scratch_bytes = 0;
  int sm_count = 0;
};

class DeviceLinear {
 public:
  DeviceLinear() = default;
  // Uploads `w` (and `bias`, empty: none) to the current device. A dense / FP8 weight found in
  // `resident` (validate's load left its file on the device) is copied from there, device to
  // device, and its host bytes are never read.
  DeviceLinear(const model::LinearWeights& w, const std::vector<double>& bias, ResidentTensors* resident = nullptr);

  bool present() const { return view_.w != nullptr; }
  uint64_t n() const { return view_.n; }
  uint64_t k() const { return view_.k; }
  const LinearView& view() const { return view_; }
  // Device bytes of the weight and its scales / zeros / g_idx.
  uint64_t bytes() const { return bytes_; }
  // "bf16", "fp8 block", "int4", "marlin" (the device form), "f32 values" for a weight without a
  // stored form the kernels take.
  const std::string& device_format() const { return format_; }
  bool marlin() const { return marlin_; }
  // Bytes of LinearContext::marlin_scratch a Marlin [n, k] Linear needs for `rows` rows: A and C
  // in 16 bits and the K split's float32 partial sums.
  static uint64_t marlin_scratch_bytes(uint64_t n, uint64_t k, uint64_t rows, int sm_count);

  // y[rows][n] = x[rows][k] W^T (+ bias); `accumulate`: y += that (the GEMM path adds the bias
  // after the sum, the skinny kernel before: float32 rounding apart). `gemm` forces the
  // dequantize + cuBLAS path for any rows (tests compare it with the skinny kernel).
  void apply(const float* x, uint64_t rows, float* y, const LinearContext& ctx, bool accumulate = false,
             bool gemm = false) const;

  // Several Linears on the same `x` (q/k/v, gate/up), each into its own y: one skinny launch
  // (a decode step's graph holds fewer kernels) where the rows allow it, else apply() each.
  static void apply_same_input(const std::vector<std::pair<const DeviceLinear*, float*>>& outs, const float* x,
                               uint64_t rows, const LinearContext& ctx);

  // The one-rank decode step's fused GEMVs (gpu_forward.cpp): one skinny launch with the RMSNorm
  // of the residual `hid` (weight `norm` [k], `eps`) folded in (linear_kernels.h SkinnyFusion).
  // Each returns false, having enqueued nothing, where that launch does not take the Linears (more
  // than kSkinnyMaxRows rows, Marlin, FP8 or INT4, a layout the skinny kernel reads element by
  // element, mixed formats): the caller then runs rms_norm_rows and the unfused Linears.
  //  - apply_normed: each of `outs` (at most kSkinnyMaxJobs) on RMSNorm(hid).
  static bool apply_normed(const std::vector<std::pair<const DeviceLinear*, float*>>& outs, const float* hid,
                           const float* norm, float eps, uint64_t rows, const LinearContext& ctx);
  //  - apply_gated: act[rows][n] = silu(gate) * up on RMSNorm(hid), gate and up two Linears or
  //    (up null) the halves of gate_up ([2n, k], gate's rows first); no gate / up output written.
  static bool apply_gated(const DeviceLinear& gate, const DeviceLinear* up, const float* hid, const float* norm,
                          float eps, uint64_t rows, float* act, const LinearContext& ctx);

 private:
  void upload_values(const model::LinearWeights& w);
  void upload_dense(const model::StoredForm& s, ResidentTensors* resident);
  void upload_int4(const model::Int4Form& f);
  void upload_marlin(const model::MarlinForm& f);
  void apply_marlin(const float* x, uint64_t rows, float* y, const LinearContext& ctx, bool accumulate) const;
  const float* bias() const { return bias_.size() ? bias_.as<float>() : nullptr; }

  LinearView view_;
  DeviceBuffer data_, scale_, zero_, g_idx_, perm_, bias_;
  bool marlin_ = false;
  MarlinGemmArgs marlin_args_;  // everything but m, a, c and sm_count
  uint64_t bytes_ = 0;
  std::string format_;
};

}  // namespace ckpt::cuda
