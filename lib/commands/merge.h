// `ckpt merge`: rebuilds the unsharded checkpoint from `ckpt shard` output, bit for bit: vocab
// padding dropped, split tensors re-joined (fused pieces re-fused, replicated KV heads taken
// once), replicated tensors taken from the first rank that holds them. The layout comes from
// the "ckpt_parallel" block of each rank's config.json and the recipe it names; every rank's
// block and file metadata must agree with its place, so a mixed-up directory is refused.
#pragma once

#include <cstdint>
#include <string>

#include "plan/plan.h"

namespace ckpt {

struct MergeOptions {
  std::string recipe_path;  // default: the recipe named in the block, from the recipes directory
  uint64_t max_shard_bytes = 5'000'000'000ull;
};

Plan plan_merge(const std::string& shard_dir, const MergeOptions& options);

}  // namespace ckpt
