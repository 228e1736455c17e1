// A Linear layer's weight as the forward uses it: something that can produce y = W x. Each stored
// format plugs in by saying how to turn rows of W into numbers (dense f32/f16/bf16; FP8 E4M3 with
// a per-tensor, per-channel or block scale; INT4 formats once lib/quant lands), and the CUDA
// runtime picks a GEMM path from `kind()`. The CPU reference multiplies in double: it
// dequantizes one row of W at a time and takes its dot product with every token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/parallel.h"
#include "core/file_io.h"
#include "validate/linear_weights.h"

namespace ckpt::model {

// Every weight file of a checkpoint mapped once; tensors are read in place.
class HostTensors {
 public:
  explicit HostTensors(const Checkpoint& ck);
  HostTensors(const HostTensors&) = delete;
  HostTensors& operator=(const HostTensors&) = delete;
  // The first byte of a tensor's data. Fails (naming the tensor) for a strided view: the runtime
  // reads deployment outputs, whose tensors are contiguous.
  const uint8_t* bytes(const TensorRef& t) const;
  const Checkpoint& checkpoint() const { return ck_; }

 private:
  const Checkpoint& ck_;
  std::vector<File> files_;
  std::vector<MappedFile> maps_;
};

// The values of a small float tensor (norm weights, biases, scales) as doubles.
std::vector<double> decode_vector(const HostTensors& host, const TensorRef& t);

enum class WeightKind { kDense, kFp8 };

class LinearWeights {
 public:
  virtual ~LinearWeights() = default;
  virtual WeightKind kind() const = 0;
  virtual uint64_t out_features() const = 0;  // N
  virtual uint64_t in_features() const = 0;   // K
  // "bf16", "fp8 per-tensor", "fp8 block 128x128", ...
  virtual std::string format() const = 0;
  // Rows [begin, begin + count) of the dequantized W, row-major [count, K].
  virtual void dequantize_rows(uint64_t begin, uint64_t count, double* out) const = 0;
  // The stored tensors behind it (the CUDA runtime reads their device copies).
  virtual const validate::LinearWeight& stored() const = 0;
};

// Dense float and FP8 weights, as validate::find_linear_weights describes them (the scale and
// its layout checked there); `host` holds the bytes and outlives this object.
std::unique_ptr<LinearWeights> stored_linear(const validate::LinearWeight& lw, const HostTensors& host);

// y[t][n] = sum_k W[n][k] * x[t][k] for `tokens` rows of x ([tokens, K]) into y ([tokens, N]), in
// double; rows of W are dequantized once per call and shared by every token. Deterministic at
// any thread count (each output is one thread's ordered sum).
void linear_forward(const LinearWeights& w, const double* x, uint64_t tokens, double* y, const Workers& workers = {});

}  // namespace ckpt::model
