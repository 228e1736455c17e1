// The decoder forward on one GPU. Every Linear's weight stays on the device in its stored form
// (runtime/device_linear.h: bf16/f16/f32 as stored, FP8 codes + float32 scales, INT4 in one
// layout for GPTQ/AWQ/compressed-tensors); activations are float32 and every product accumulates
// in float32: up to kSkinnyMaxRows rows a skinny kernel that reads each weight once and
// dequantizes in registers (decode), beyond it the weight dequantized into a float32 scratch and a
// float32 cuBLAS GEMM (prefill, no TF32). The other kernels (forward_kernels.cu) follow the CPU
// reference's formulas, so the logits match lib/model/cpu_forward.h to float32 rounding. A
// tensor-parallel model runs its ranks in turn on this GPU, partial sums added in rank order,
// vocab padding dropped.
//
// decode() runs a decode step (one token per sequence) by replaying a CUDA graph captured on its
// first call: the ids and the position live in device buffers the graph reads, the activations in
// a workspace allocated before capture, so a step has no allocation and no host synchronisation
// but the final logits copy. A step may take the first b sequences only (1 <= b <= batch), as a
// serving engine captures one graph per batch size at start-up: each b gets its own graph, all
// sharing the weights, the KV cache (sized for `batch`) and the workspace (sized for `batch` rows
// at the first step, so growing it never drops a graph captured for a smaller b). forward() and
// decode() of one rank, where the rows take the skinny kernel, fold each RMSNorm into the GEMV
// after it (q/k/v, gate/up, lm_head) and SiLU(gate) * up into the gate/up GEMV
// (DeviceLinear::apply_normed / apply_gated): a layer launches no norm or SiLU kernel. The step in
// pieces below (with or without an observer), several ranks, more rows, Marlin and element-wise
// layouts run them unfused; the two agree to float32 reassociation.
//
// The step also runs in pieces (embed / layer / commit / logits, as CpuForward's) with an observer
// of each layer's logical activations on the device: validate --against compares two models that
// way (runtime/gpu_step_forward.h).
//
// MoE layers route on the host (the reference's route() on router logits computed here), which
// needs a host synchronisation inside the step: for MoE models decode() runs the step eagerly
// and graph_unsupported() says so. Not here yet: device-side routing, the cuBLASLt FP8 and
// bf16 tensor-core GEMMs for prefill (prefill dequantizes to float32). Marlin-layout INT4 weights run
// the Marlin W4A16 kernel (runtime/device_linear.h), in decode and prefill.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "model/model_weights.h"
#include "resident_tensors.h"

namespace ckpt::cuda {

// Sees a layer's logical (unsharded, reduced) activations as model::ActivationObserver
// (lib/model/cpu_forward.h) does, with its names and in its order: each Linear's output
// ("self_attn.q_proj" ... "mlp.down_proj", with biases, before Qwen3's q/k norm), MoE router
// logits, "<block>.experts.<e>" (expert e's output on its routed rows), "<block>.experts",
// "<block>.shared_expert", and "output". `data` is device float32 [rows][width], valid during the
// call only and computed by work enqueued on `stream`: the observer reads it with work enqueued
// there (a copy, a reduction), never from the host without synchronising.
class DeviceActivationObserver {
 public:
  virtual ~DeviceActivationObserver() = default;
  virtual void on(uint64_t layer, const std::string& name, const float* data, uint64_t rows, uint64_t width,
                  cudaStream_t stream) = 0;
};

class GpuForward {
 public:
  // Uploads the model to the current device and allocates a KV cache for `batch` sequences of
  // up to `capacity` tokens. Stored dense / FP8 weights found in `resident` are copied from there
  // (device to device) instead of from the host; `resident` is not used after the constructor.
  GpuForward(const model::Model& m, uint64_t batch, uint64_t capacity, ResidentTensors* resident = nullptr);
  ~GpuForward();
  GpuForward(const GpuForward&) = delete;
  GpuForward& operator=(const GpuForward&) = delete;

  // As CpuForward::forward: `tokens` new ids per sequence ([batch][tokens]); logits [batch*tokens][vocab].
  // Runs eagerly (no graph).
  std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens);
  // One decode step: one new id for each of the first b = ids.size() sequences (1 <= b <= batch);
  // logits [b][vocab]. Replays the CUDA graph of batch size b (captured on its first step), or
  // runs it eagerly where graph_unsupported() says why. Every step advances the one position all
  // sequences share: a step of b < batch sequences leaves the others' cache entries there
  // unwritten (warm-up and benchmarks reset() before the next sequence).
  // `graph` false: the same step run eagerly (validate compares the two bit for bit).
  std::vector<double> decode(const std::vector<int64_t>& ids, bool graph = true);
  // What capturing the decode graph of batch size b cost, once it was captured (nullopt before,
  // or where graph_unsupported()).
  struct GraphStats {
    double capture_s = 0, instantiate_s = 0;
    uint64_t nodes = 0;
  };
  std::optional<GraphStats> graph_stats(uint64_t b) const;
  uint64_t batch() const;
  // Allocates the workspace of a decode step of the whole batch now (the first step would), so
  // that its allocation is timed apart from the steps; workspace_bytes() then says its size.
  void prepare_decode();
  uint64_t workspace_bytes() const;
  // Why decode() cannot use a CUDA graph for this model; empty when it does.
  std::string graph_unsupported() const;
  // For benchmarks: decode()'s step enqueued without reading the logits back (synchronize() waits).
  void enqueue_decode(const std::vector<int64_t>& ids);
  void synchronize();

  // The step in pieces, as CpuForward's embed / layer / commit / logits, for comparisons that feed
  // one model's hidden states into another's layer (model::compare_models through
  // runtime/gpu_step_forward.h). embed() begins a step of ids.size() / batch tokens per sequence
  // and returns its hidden state [batch * tokens][hidden] (float32, device); layer(i) runs layer
  // i on any such hidden state in place (keys and values written at [length, length + tokens));
  // commit(tokens) ends the step; logits() is the final norm + lm_head of `rows` rows of a hidden
  // state, [rows][vocab] on the host. All work is enqueued on stream(); layer() and embed() do not
  // wait for it, logits() does.
  DeviceBuffer embed(const std::vector<int64_t>& ids);
  void layer(uint64_t i, float* hidden, uint64_t tokens, DeviceActivationObserver* observer = nullptr);
  void commit(uint64_t tokens);
  std::vector<float> logits(const float* hidden, uint64_t rows);
  cudaStream_t stream() const;

  uint64_t length() const;
  void reset();
  uint64_t kv_cache_bytes() const;
  // Device bytes of every Linear, embedding and lm_head weight in its device form (with scales).
  uint64_t weight_bytes() const;
  // The weight bytes a decode step reads: weight_bytes() less the embedding tables (a step reads
  // one row of them). Divided by the HBM read bandwidth: the floor of a batch-1 decode step.
  uint64_t step_weight_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckpt::cuda
