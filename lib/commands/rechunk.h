// `ckpt rechunk`: re-packs any checkpoint into Hugging Face shards of at most a given size.
// Tensor bytes are copied verbatim (in the kernel, where the bytes are one contiguous range).
#pragma once

#include "checkpoint/checkpoint.h"
#include "plan/plan.h"

namespace ckpt {

inline constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ull;  // "5GB", as Hugging Face

Plan plan_rechunk(const Checkpoint& ck, uint64_t max_shard_bytes);

// The source paths of a checkpoint, in SourceView::file order (a plan's `sources`).
std::vector<std::string> source_paths(const Checkpoint& ck);
// A plan's sources and the source checks that must run with it, from the checkpoint it reads.
void set_plan_sources(Plan& plan, const Checkpoint& ck);

}  // namespace ckpt
