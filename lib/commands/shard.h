// `ckpt shard`: tensor- (and pipeline-) parallel pre-sharding. One plan holds every rank's
// output directory (DST/rank-r/, or DST/stage-s/rank-r/ with --pp), each a complete Hugging Face
// directory of that rank's slices under their HF names; the executor writes them all in one pass
// over the source, each slice a view (narrow, strided, concatenated pieces, zero padding) of
// the source bytes it needs.
#pragma once

#include <cstdint>
#include <string>

#include "checkpoint/checkpoint.h"
#include "plan/plan.h"
#include "recipes/recipe.h"

namespace ckpt {

struct ShardOptions {
  uint64_t tp = 1;
  uint64_t pp = 1;
  bool ep = false;                // distribute whole MoE experts over the tp ranks
  uint64_t vocab_multiple = 64;   // vLLM's DEFAULT_VOCAB_PADDING_SIZE
  uint64_t max_shard_bytes = 5'000'000'000ull;
};

// The key of the block shard adds to each rank's config.json.
inline constexpr const char* kParallelConfigKey = "ckpt_parallel";

// The note shard writes at the root of its output: what the rank directories are, how a serving
// process loads its rank, and how the layout differs from vLLM's own pre-sharded format.
inline constexpr const char* kParallelNoteName = "README.md";
std::string parallel_note(const ShardOptions& options, const std::string& recipe);

Plan plan_shard(const Checkpoint& ck, const Recipe& recipe, const ShardOptions& options);

// A rank's directory inside DST: "rank-3" or, with pp > 1, "stage-1/rank-3".
std::string rank_dir_name(uint64_t pp, uint64_t stage, uint64_t rank);

// The config.json text of a rank: the source text with the block appended as its last key (so
// merge can strip it and give back the source text unchanged).
std::string config_with_block(const std::string& source_text, const ojson& block);
// The inverse: the source text, given a rank's config.json text.
std::string config_without_block(const std::string& rank_text);

}  // namespace ckpt
