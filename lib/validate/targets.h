// What `ckpt validate DIR` looks at: DIR itself (a Hugging Face directory), or the per-rank
// directories of a tensor/pipeline-parallel output (DIR/rank-r/, DIR/stage-s/rank-r/, as
// `ckpt shard` writes them), each opened and checked on its own, then checked against each other.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "validate/linear_weights.h"
#include "quant/scheme.h"

namespace ckpt::validate {

struct Target {
  std::string label;  // "" for a plain directory, "rank-1", "stage-0/rank-1"
  std::string dir;
  int stage = 0, rank = 0;
  bool opened = false;  // the checkpoint opened; GPU phases run only on opened targets
  Checkpoint ck;
  quant::Scheme scheme;  // for a `ckpt marlin` output: the source format's (marlin true)
  bool marlin = false;
  std::vector<LinearWeight> linears;  // point into ck.tensors: a Target is never copied
  std::string linear_source;          // how Linear weights were told apart (LinearSelector)
  std::optional<ojson> parallel;      // config.json's "ckpt_parallel" block

  Target() = default;
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;
};

struct Layout {
  std::string root;
  bool parallel = false;  // rank directories
  std::vector<std::unique_ptr<Target>> targets;
};

// Finds and opens the targets under `root` and runs every per-directory structure check:
// headers and index (open_checkpoint), no stray shard outside the index, safetensors only,
// config.json present and consistent with the tensors (dtype, hidden size, vocab), the
// quantization config and a scale for every FP8 weight (linear_weights.h), and every scale value
// finite and positive. Failures go to `fail`.
Layout open_layout(const std::string& root, const FailFn& fail);

// For a parallel layout: every rank (and stage) present exactly once, tp/pp sizes, ranks, recipe
// and configs agreeing, each file's safetensors metadata naming its rank, and the ranks of a
// stage holding the same tensors with the same dtypes and shapes.
void check_parallel_layout(const Layout& layout, const FailFn& fail);

}  // namespace ckpt::validate
