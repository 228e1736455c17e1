// `ckpt inspect`: what a checkpoint holds — files, tensors, totals per dtype, parameter count and
// architecture — as a JSON document or a readable table. The root of a TP/PP output is read as
// validate reads it (checkpoint/parallel_root.h): each rank's report, and what the ranks hold
// together.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"

namespace ckpt {

ojson inspect_report(const Checkpoint& ck);
// The report for `path`: inspect_report of the checkpoint it names or, for a TP/PP output root,
// {"path", "parallel" (the ranks' ckpt_parallel sizes), "architecture", "quantization", "ranks"
// (each rank's report with its "label", "stage" and "rank"), "tensor_count", "tensor_bytes"
// (summed over the ranks: what is stored), "note" (the root's how-to-load file, if any)}.
ojson inspect_path(const std::string& path, const OpenOptions& options);
std::string inspect_text(const ojson& report);

}  // namespace ckpt
