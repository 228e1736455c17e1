// Runs any Plan: writes every header first, then tensor data at final offsets, in parallel
// across tensors and across chunks of large tensors, with a bounded amount of memory in flight;
// computes every tensor's and file's digest on the way; writes ckpt-manifest.json; and moves
// the finished directory into place atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cancel.h"
#include "core/progress_observer.h"
#include "formats/strict_json.h"
#include "plan/plan.h"

namespace ckpt {

struct ExecOptions {
  int threads = 0;                          // 0: one per online CPU
  bool force = false;                       // replace an existing destination
  bool sync = true;                         // fsync the output before it is moved into place
  ProgressObserver* progress = nullptr;     // told each stage, the bytes done and the current file
  const CancelToken* cancel = nullptr;      // checked before every chunk, check, side file and the commit
  // The destination names the output file; the plan's files land beside it (OutputDir::Kind::kFile).
  bool file_destination = false;
  uint64_t memory_budget = 256ull << 20;    // bytes of chunk buffers in flight, all threads
  std::vector<std::string> protected_paths;  // the user's source paths (never written, never inside)
  std::vector<std::string> command_line;    // recorded in the manifest
};

struct ExecReport {
  size_t tensors = 0;
  uint64_t tensor_bytes = 0;
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;
  int threads = 0;
  ojson manifest;
  // Stale temporaries of earlier runs found beside the destination: removed, or left and why.
  std::vector<std::string> notes;
};

ExecReport execute(const Plan& plan, const std::string& destination, const ExecOptions& options);

// Peak resident set size of this process so far.
uint64_t peak_rss_bytes();

}  // namespace ckpt
