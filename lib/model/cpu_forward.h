// The CPU reference forward: the decoder computed plainly in double precision (every sum
// accumulated in double), the one implementation the CUDA runtime and every fast path are
// tested against, and the runtime of `ckpt forward --device cpu` on small models.
//
// It follows transformers' modeling code for each family: embeddings; per layer RMSNorm,
// q/k/v projections (+ biases; Qwen3's per-head q/k RMSNorm), rotary embedding, causal GQA
// attention (softmax over scaled scores, Mistral-style sliding window), o_proj, RMSNorm, then
// the gated SiLU MLP or the MoE block (softmax over router logits, top-k, renormalised or not,
// each chosen expert's output weighted by its probability; Qwen2-MoE's shared expert scaled by
// a sigmoid gate); final RMSNorm and lm_head.
//
// A tensor-parallel model runs as the engine runs it: each rank computes its heads and its slice
// of the MLP from its own tensors, partial results of row-parallel Linears are summed in rank
// order, and each rank's lm_head rows are gathered with the vocab padding dropped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "model/model_weights.h"
#include "model/rope.h"

namespace ckpt::model {

// Sees the logical (unsharded) activations of each layer as they are computed, tokens x width,
// row-major: the outputs of "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj" (or
// "self_attn.qkv_proj"), "self_attn.o_proj" (reduced, bias added), "mlp.gate_proj",
// "mlp.up_proj" (or "mlp.gate_up_proj"), "mlp.down_proj"; for MoE layers the router logits
// ("mlp.gate" / "block_sparse_moe.gate"), "<block>.experts.<e>" (expert e's output on the rows
// routed to it, for experts with any), "<block>.experts" (the weighted sum of the routed experts) and "<block>.shared_expert" (gated); and "output", the hidden state after the layer.
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  virtual void on(uint64_t layer, const std::string& name, const double* data, uint64_t tokens, uint64_t width) = 0;
  // The inputs of a dense layer's Linears, once per distinct input (calibration, lib/calib), named
  // by the first Linear that takes it: "self_attn.q_proj" (also k/v or the fused qkv),
  // "self_attn.o_proj", "mlp.gate_proj" (also up, or the fused gate_up), "mlp.down_proj". Under
  // tensor parallelism each rank's own input is shown (the o/down inputs are rank slices).
  virtual void on_input(uint64_t /*layer*/, const std::string& /*name*/, const double* /*data*/, uint64_t /*tokens*/,
                        uint64_t /*width*/) {}
};

class CpuForward {
 public:
  // A KV cache for `batch` sequences of up to `capacity` tokens each; the matrix products and the
  // attention run on `workers` (and stop with Errc::kInterrupted when its token is set).
  CpuForward(const Model& model, uint64_t batch, uint64_t capacity, Workers workers = {});

  const Model& model() const { return m_; }
  uint64_t batch() const { return batch_; }
  uint64_t length() const { return length_; }  // tokens cached per sequence
  uint64_t capacity() const { return capacity_; }
  uint64_t kv_cache_bytes() const;
  void reset() { length_ = 0; }

  // The whole step: `ids` holds `tokens` new ids for each of the batch sequences
  // ([batch][tokens], row-major); returns logits [batch * tokens][vocab].
  std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens, ActivationObserver* obs = nullptr);

  // The step in pieces, for comparisons that feed one model's hidden states into another's layer:
  // embed, then layer(i) for every layer (each writes its keys and values at positions
  // [length, length + tokens)), then commit(tokens), then logits.
  std::vector<double> embed(const std::vector<int64_t>& ids) const;
  void layer(uint64_t i, std::vector<double>& hidden, uint64_t tokens, ActivationObserver* obs);
  void commit(uint64_t tokens);
  // final norm + lm_head of hidden [rows][hidden] -> [rows][vocab].
  std::vector<double> logits(const std::vector<double>& hidden) const;

  // One sub-block of layer i on its normalised input x ([batch * tokens][hidden]): out = the
  // attention's output (o_proj's, keys and values written as layer() does) or the dense MLP's
  // (down_proj's). Calibration scores candidate weights of one module with them.
  void attention(uint64_t i, const std::vector<double>& x, uint64_t tokens, std::vector<double>& out,
                 ActivationObserver* obs);
  void mlp(uint64_t i, const std::vector<double>& x, uint64_t rows, std::vector<double>& out, ActivationObserver* obs);

 private:
  void moe(uint64_t i, const std::vector<double>& x, uint64_t rows, std::vector<double>& out, ActivationObserver* obs);

  const Model& m_;
  const ModelConfig& c_;
  uint64_t batch_, capacity_, length_ = 0;
  Workers workers_;
  RopeTable rope_;
  // keys_[layer][rank] and values_: [batch][capacity][local kv heads][head_dim]
  std::vector<std::vector<std::vector<double>>> keys_, values_;
};

// RMSNorm of each of `rows` rows of width w: w_i * x_i / sqrt(mean(x^2) + eps).
void rms_norm(const double* x, uint64_t rows, uint64_t width, const std::vector<double>& weight, double eps, double* out);

// MoE routing of `rows` rows of router logits [rows][experts] (MixtralSparseMoeBlock /
// Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock.forward): softmax over all experts, the top-k
// probabilities, renormalised to sum 1 when configured. Per expert: its rows (ascending) and weights.
struct ExpertRows {
  std::vector<uint64_t> rows;
  std::vector<double> weights;
};
std::vector<ExpertRows> route(const std::vector<double>& logits, uint64_t rows, const MoeConfig& moe);

// A module's name inside its layer, as the observer names activations:
// "model.layers.3.mlp.gate" -> "mlp.gate" (other names as they are).
std::string short_module_name(const std::string& module);

// Index of the largest of n values (the first of equal ones).
uint64_t argmax(const double* v, uint64_t n);

}  // namespace ckpt::model
