// GPTQ of one Linear on the GPU: the Hessian of its calibration inputs accumulated with cuBLAS,
// and the column sweep of calib::gptq_int4 (lib/calib/gptq.h: the same algorithm and the same
// choices — dead inputs, the damping ladder with RTN fallback, the Cholesky-inverse route,
// 128-column lazy batches, group parameters from the original weights, act-order "static") in
// float32 with cuSOLVER, cuBLAS and one sweep kernel. Results are the CPU's structs
// (calib::Int4Weights, calib::GptqOutcome), so the checkpoint writers are shared;
// tests/gpu/test_gptq_gpu.cpp holds it to the float64 CPU reference.
//
// Every call enqueues on the stream given at construction and is checked (CKPT_CUDA / CKPT_CUBLAS /
// CKPT_CUSOLVER throw ckpt::Error); every handle and buffer is owned (kernels/cuda_check.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "calib/gptq.h"
#include "cuda_check.h"

namespace ckpt::cuda {

// H = 2/n Σ x xᵀ over the n tokens of a Linear input of width k, as calib::Hessian, accumulated
// in float32 on the device: Σ x xᵀ = Xᵀ X by cublasGemmEx with CUBLAS_COMPUTE_32F. For BF16
// activations the products are exact in float32 and cuBLAS runs them on the tensor cores (float32
// accumulation): 2·tokens·k² FLOPs at the BF16 tensor-core rate, which is what makes the Hessians
// of an 8B model cheap. Float32 activations run the float32 (non-TF32) GEMM, about 15x slower.
class DeviceHessian {
 public:
  enum class Input { kF32, kBF16 };
  DeviceHessian(uint64_t k, cudaStream_t stream);
  // x: device [tokens, k] row-major, float32 or BF16 (uint16 bits).
  void add(const void* x, Input type, uint64_t tokens);
  uint64_t width() const { return k_; }
  uint64_t tokens() const { return n_; }
  // The [k, k] matrix 2/n Σ x xᵀ, exactly symmetric (zeros when no token was seen), into device
  // `out` (k·k floats) on the stream.
  void matrix(float* out) const;
  DeviceBuffer matrix() const;

 private:
  uint64_t k_, n_ = 0;
  cudaStream_t stream_;
  BlasHandle blas_;
  DeviceBuffer sum_;  // Σ x xᵀ, [k, k]
};

// One Linear's GPTQ on the device. run() leaves codes and dequantized values on the device;
// download() brings them to the host structs.
class DeviceGptq {
 public:
  explicit DeviceGptq(cudaStream_t stream);
  // w: device [n, k] float32 row-major; h: device [k, k] float32 (DeviceHessian::matrix). Errors as
  // calib::gptq_int4: a NaN/Inf weight or an overflowing scale is returned as the CPU reference
  // names it (the same first problem), nothing else computed. Options: block 1..128.
  ops::Int4Issue run(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k, const float* h,
                     const calib::GptqOptions& options, calib::GptqOutcome* outcome);
  // The last run's result: params, codes [n, k] (original column order) and dequantized values.
  void download(calib::Int4Weights* out) const;
  // Device results of the last run.
  const uint8_t* codes() const { return codes_.as<uint8_t>(); }
  const float* dequantized() const { return deq_.as<float>(); }

 private:
  cudaStream_t stream_;
  BlasHandle blas_;
  SolverHandle solver_;
  ops::Int4Scheme scheme_;
  ops::Int4Geometry geo_;
  DeviceBuffer scales_, zeros_, flags_, perm_, hp_, wp_, a_, work_, info_, err_, codes_, deq_, loss_;
};

// GPTQ of a device weight against a device Hessian, the result on the host: the GPU twin of
// calib::gptq_int4 (same structs; dequantized holds the float32 values as doubles).
ops::Int4Issue gptq_int4_device(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k, const float* h,
                                const calib::GptqOptions& options, calib::Int4Weights* out,
                                calib::GptqOutcome* outcome, cudaStream_t stream);

}  // namespace ckpt::cuda
