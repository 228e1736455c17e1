// A check of source bytes that opening a checkpoint records but does not run: reading whole
// records at open time (a torch zip's CRC-32s, say) would be a second pass over the data before
// the copy even starts. The executor runs these beside the chunks, on the same threads, and a
// failure aborts the run like any other error (nothing is left behind).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/file_io.h"

namespace ckpt {

class SourceCheck {
 public:
  virtual ~SourceCheck() = default;
  virtual int file() const = 0;         // index into the checkpoint's (and the plan's) sources
  virtual uint64_t bytes() const = 0;   // how much it reads
  virtual void run(const File& source) const = 0;  // throws ckpt::Error when the check fails
};

using SourceChecks = std::vector<std::shared_ptr<const SourceCheck>>;

}  // namespace ckpt
