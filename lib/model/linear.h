// A Linear layer's weight as the forward uses it: something that can produce y = W x. Each stored
// format plugs in by saying how to turn rows of W into numbers (dense f32/f16/bf16; FP8 E4M3 with
// a per-tensor, per-channel or block scale; INT4 in the GPTQ / AWQ / compressed-tensors packings),
// and by handing out its stored form, which the CUDA runtime keeps on the device as it is and
// dequantizes in its GEMM kernels. The CPU reference multiplies in double: it dequantizes one row
// of W at a time and takes its dot product with every token.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/parallel.h"
#include "ops/int4_quant.h"
#include "validate/checkpoint_bytes.h"
#include "validate/linear_weights.h"

namespace ckpt::model {

// Every weight file of a checkpoint mapped once, tensors read in place; a tensor inside a packed
// checkpoint is decoded on first use, once, by every CPU (CheckpointBytes::get_parallel), so a
// runtime that takes the big weights from elsewhere (validate's device copy, DeviceLinear)
// decodes only the small tensors it reads.
class HostTensors {
 public:
  explicit HostTensors(const Checkpoint& ck);
  HostTensors(const HostTensors&) = delete;
  HostTensors& operator=(const HostTensors&) = delete;
  // The first byte of a tensor's data. Fails (naming the tensor) for a strided view: the runtime
  // reads deployment outputs, whose tensors are contiguous. Any thread.
  const uint8_t* bytes(const TensorRef& t) const;
  const Checkpoint& checkpoint() const { return ck_; }

 private:
  struct Decoded {
    std::once_flag once;
    std::unique_ptr<uint8_t[]> buf;
    const uint8_t* data = nullptr;
  };
  const Checkpoint& ck_;
  validate::CheckpointBytes bytes_;
  mutable std::mutex mu_;                                                // guards decoded_'s map
  mutable std::map<const TensorRef*, std::unique_ptr<Decoded>> decoded_;  // packed files' tensors
};

// The values of a small float tensor (norm weights, biases, scales) as doubles.
std::vector<double> decode_vector(const HostTensors& host, const TensorRef& t);

enum class WeightKind { kDense, kFp8, kInt4 };

// An INT4 weight's stored arrays in its format's layout (ops/int4_quant.h), whole tensors.
struct Int4Form {
  ops::Int4Scheme scheme;
  ops::Int4Geometry geo;
  ops::Int4Stored arrays;  // g_idx null: column k is in group k / G
};

// A Marlin-layout INT4 weight as stored (commands/marlin.h, validate::LinearWeight::marlin): the
// arrays vLLM's Marlin GEMM reads, host bytes of the mapped tensors.
struct MarlinForm {
  uint64_t n = 0, k = 0, groups = 1;
  int64_t group_size = -1;            // -1: channelwise
  DType scale_dtype = DType::F16;
  const uint8_t* qweight = nullptr;   // I32 [K/16, 2N]
  const uint8_t* scales = nullptr;    // [G, N] Marlin-permuted
  const uint8_t* zeros = nullptr;     // I32 [G, N/8] Marlin zero points; null: symmetric (zero 8)
  const uint8_t* g_idx = nullptr;     // act-order: I32 [K] sorted; else null
  const uint8_t* perm = nullptr;      // act-order: I32 [K] sort indices; else null
};

// A weight as stored, for a runtime that keeps it so. Dense / FP8: `linear` gives the element
// dtype, [N, K] and the scale layout (its `weight` the tensor, which a runtime holding the file's
// bytes already may take from there), host_bytes() the first byte of the row-major weight on the
// host — read, or decoded from a packed file, only when asked — and `scales` the decoded scale
// tensor (FP8; empty for dense). INT4: `int4`. Marlin: `marlin`.
struct StoredForm {
  const validate::LinearWeight* linear = nullptr;
  const HostTensors* host = nullptr;
  const std::vector<double>* scales = nullptr;
  const Int4Form* int4 = nullptr;
  const MarlinForm* marlin = nullptr;
  const uint8_t* host_bytes() const { return host->bytes(*linear->weight); }
};

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
  // The stored form (the CUDA runtime uploads it as it is), or none for a weight whose values
  // exist only as numbers (calib's smoothed / fake-quantized Linears): the runtime then uploads
  // dequantize_rows() rounded to float32.
  virtual std::optional<StoredForm> stored_form() const { return std::nullopt; }
};

// Dense float, FP8 and INT4 weights, as validate::find_linear_weights describes them (the scale
// and its layout, the INT4 arrays, checked there); `host` holds the bytes and outlives this
// object (INT4 arrays are read in place where they are 4-byte aligned, copied otherwise). A
// Marlin weight's rows decode through its arrays undone into the source format
// (validate::marlin_source_arrays, on the first dequantize_rows) and that format's decoder.
std::unique_ptr<LinearWeights> stored_linear(const validate::LinearWeight& lw, const HostTensors& host);

// An INT4 weight owning its arrays (bytes of the format's layout: weights, zeros (empty: none),
// scales in scheme.scale_dtype, g_idx (empty: k / G)); rows decode through ops::int4_decode.
// Fails on arrays of the wrong size or a g_idx value outside [0, G).
std::unique_ptr<LinearWeights> int4_linear(const ops::Int4Scheme& scheme, uint64_t n, uint64_t k,
                                           std::vector<uint8_t> weights, std::vector<uint8_t> zeros,
                                           std::vector<uint8_t> scales, std::vector<uint8_t> g_idx);

// y[t][n] = sum_k W[n][k] * x[t][k] for `tokens` rows of x ([tokens, K]) into y ([tokens, N]), in
// double; rows of W are dequantized once per call and shared by every token. Deterministic at
// any thread count (each output is one thread's ordered sum).
void linear_forward(const LinearWeights& w, const double* x, uint64_t tokens, double* y, const Workers& workers = {});

}  // namespace ckpt::model
