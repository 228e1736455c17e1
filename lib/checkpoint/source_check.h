// A check of a byte range of a source file that opening a checkpoint records but does not run:
// reading whole records at open time (a torch zip's CRC-32s, say) would be a second pass over the
// data before the copy even starts. Instead the executor hands each check the bytes of its range
// that the verbatim copies read anyway, block by block while they are in cache, and finishes the
// checks once every chunk is done; a check reads only what no copy fed it. A failure aborts the
// run like any other error (nothing is left behind).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/cancel.h"
#include "core/file_io.h"

namespace ckpt {

class SourceCheck {
 public:
  // One execution's state of the check (a plan may be executed more than once).
  class Pass {
   public:
    virtual ~Pass() = default;
    // Source bytes [offset, offset + n), inside the check's range, as a copy read them. Any
    // thread, any order; the same bytes may come more than once (aliased tensors).
    virtual void feed(uint64_t offset, const uint8_t* data, size_t n) = 0;
    // After the last feed: reads what was not fed (checking `cancel` as it goes); throws
    // ckpt::Error when the check fails.
    virtual void finish(const File& source, const CancelToken* cancel) = 0;
  };

  virtual ~SourceCheck() = default;
  virtual int file() const = 0;         // index into the checkpoint's (and the plan's) sources
  virtual uint64_t offset() const = 0;  // it checks source bytes [offset, offset + bytes)
  virtual uint64_t bytes() const = 0;
  // A new pass; the check must outlive it.
  virtual std::unique_ptr<Pass> start() const = 0;
};

using SourceChecks = std::vector<std::shared_ptr<const SourceCheck>>;

}  // namespace ckpt
