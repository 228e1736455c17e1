// Which tensor plays which part of the decoder, for a plain Hugging Face directory or a
// tensor/pipeline-parallel output (rank-r/, stage-s/rank-r/ as `ckpt shard` writes them), each
// rank's slices kept as they are: a forward runs every rank's share and reduces the partial
// results, exactly as the serving engine the output was sharded for would.
//
// Every tensor of every rank is accounted for: one the model does not use (other than rotary
// caches and KV-cache/activation scales, which the runtime does not need) is an error, as is a
// missing one or a shape that is not the rank's share of the config's dimensions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "commands/tp_split.h"
#include "model/linear.h"
#include "model/model_config.h"
#include "validate/targets.h"

namespace ckpt::model {

// One rank's slice of a Linear.
struct RankLinear {
  std::string module;  // "model.layers.0.self_attn.q_proj"
  std::shared_ptr<const LinearWeights> weight;
  std::vector<double> bias;  // this rank's slice of the bias; empty: none (or added after the reduce)
  // Where this rank's output rows sit in the logical (unsharded) output, in order. For a
  // row-parallel Linear (o_proj, down_proj), whose output is a partial sum, the whole output.
  std::vector<AxisRange> rows;
  bool present() const { return weight != nullptr; }
};

// The MLP of one rank: separate gate/up or Phi-3's fused gate_up (gate rows, then up rows).
struct RankMlp {
  RankLinear gate, up, gate_up, down;
  uint64_t local_intermediate = 0;
  bool present() const { return down.present(); }
};

struct RankAttention {
  RankLinear q, k, v, qkv, o;  // qkv for Phi-3 (q rows, then k, then v)
  std::vector<uint64_t> q_heads;   // global indices of the query heads this rank computes
  std::vector<uint64_t> kv_heads;  // global indices of the KV heads it holds
};

struct RankMoe {
  std::vector<RankMlp> experts;  // by expert id; !present() where another rank holds it (--ep)
  RankMlp shared;                // Qwen2-MoE shared expert (!present() when none)
};

struct Layer {
  std::vector<double> input_norm, post_norm;  // [hidden]
  std::vector<double> q_norm, k_norm;         // [head_dim] (Qwen3)
  std::vector<RankAttention> attention;       // per TP rank
  std::vector<double> o_bias;                 // row-parallel: added once after the reduce
  bool moe = false;
  std::vector<RankMlp> mlp;  // per rank (dense layers)
  std::vector<double> down_bias;
  std::shared_ptr<const LinearWeights> router;       // MoE: [experts, hidden], replicated
  std::string router_module;
  std::shared_ptr<const LinearWeights> shared_gate;  // Qwen2-MoE: [1, hidden], replicated
  std::vector<RankMoe> experts;                      // per rank
};

// A vocab-parallel table (embeddings or lm_head) of one rank: its rows [0, rows.length) are the
// logical rows [rows.begin, rows.begin + rows.length); rows past those are padding.
struct VocabSlice {
  std::shared_ptr<const LinearWeights> table;
  AxisRange rows;
};

class Model {
 public:
  // Builds the model from a layout opened by validate::open_layout (structure checked there).
  static std::unique_ptr<Model> load(const validate::Layout& layout);
  // Opens `path` (a directory or a parallel output root) and loads it; structural problems
  // are errors.
  static std::unique_ptr<Model> open(const std::string& path);

  const ModelConfig& config() const { return config_; }
  uint64_t tp() const { return tp_; }
  uint64_t pp() const { return pp_; }
  const std::vector<Layer>& layers() const { return layers_; }
  // Calibrated quantization (lib/calib) swaps a layer's Linear weights and norm weights for
  // quantized or smoothed ones as it goes.
  Layer& mutable_layer(uint64_t i) { return layers_.at(i); }
  const std::vector<VocabSlice>& embed() const { return embed_; }
  const std::vector<VocabSlice>& lm_head() const { return lm_head_; }
  const std::vector<double>& final_norm() const { return final_norm_; }
  // Formats of the Linear weights, counted ("14 bf16", "12 fp8 per-tensor, 2 bf16").
  std::string formats() const;
  // "tp 2" / "tp 2 x pp 2" / "" for a plain directory.
  std::string parallelism() const;
  const std::string& path() const { return path_; }

 private:
  Model() = default;
  struct Builder;
  ModelConfig config_;
  uint64_t tp_ = 1, pp_ = 1;
  std::string path_;
  std::vector<Layer> layers_;
  std::vector<VocabSlice> embed_, lm_head_;
  std::vector<double> final_norm_;
  std::unique_ptr<validate::Layout> owned_layout_;  // when opened here
  std::vector<std::unique_ptr<HostTensors>> host_;  // one per target, in layout order
};

}  // namespace ckpt::model
