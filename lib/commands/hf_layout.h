// Laying output tensors out as a Hugging Face checkpoint directory: one model.safetensors, or
// model-0000i-of-0000N.safetensors shards of at most a given size plus model.safetensors.index.json,
// and the side files carried along.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "plan/plan.h"

namespace ckpt {

// Orders names so that numbers compare as numbers ("layers.2" before "layers.10").
bool natural_less(const std::string& a, const std::string& b);
// The layer a tensor belongs to: its name up to the first all-digit component
// ("model.layers.3.mlp.up_proj.weight" -> "model.layers.3"), or the whole name when none.
std::string layer_key(const std::string& name);

// Splits tensors (in natural name order) into shards of at most max_bytes tensor bytes: never a
// tensor across shards, a larger tensor alone in its own shard, and a layer's tensors kept in one
// shard whenever the layer fits in one. Returns the shard index of each input tensor.
std::vector<size_t> assign_shards(const std::vector<std::pair<std::string, uint64_t>>& tensors,
                                  uint64_t max_bytes, size_t* shard_count);

// Adds the output files (and the index when there is more than one) to the plan.
void add_hf_safetensors_files(Plan& plan, std::vector<OutputTensor> tensors, uint64_t max_shard_bytes,
                              const Metadata& metadata = {{"format", "pt"}});
// Carries the checkpoint's side files; `replaced` gives new content for some of them by name.
void add_side_files(Plan& plan, const Checkpoint& ck, const std::map<std::string, std::string>& replaced = {});

}  // namespace ckpt
