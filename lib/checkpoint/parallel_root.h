// The root of a tensor/pipeline-parallel output as `ckpt shard` writes it: no weight files of its
// own, and one Hugging Face directory per rank, DIR/rank-r/ (or DIR/stage-s/rank-r/ with --pp).
// One definition of how such a root is recognised, for every command that reads one (inspect,
// validate).
#pragma once

#include <string>
#include <vector>

namespace ckpt {

struct RankDir {
  std::string label;  // "rank-1", "stage-0/rank-1"
  std::string dir;    // the rank's directory
  int stage = 0, rank = 0;
};

// The rank directories under `root`, stage by stage and rank by rank in numeric order; empty when
// `root` holds weight files itself or has no rank-r/ or stage-s/ directories.
std::vector<RankDir> parallel_rank_dirs(const std::string& root);

}  // namespace ckpt
