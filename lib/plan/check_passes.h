// One execution's source checks (see checkpoint/source_check.h): a pass of each check, found by
// source position, so that every block a verbatim copy reads is fed to the checks whose ranges it
// overlaps, and the passes are finished once all chunks are done.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "checkpoint/source_check.h"
#include "plan/source_reader.h"

namespace ckpt {

class CheckPasses {
 public:
  // Checks of one source file must not overlap (a zip's records never do).
  explicit CheckPasses(const SourceChecks& checks);
  // Feeds bytes [offset, offset + n) of source `file` to each check they overlap, the overlap only.
  void feed(int file, uint64_t offset, const uint8_t* data, size_t n) const;
  size_t size() const { return watches_.size(); }
  // Finishes the i-th pass (any order, any thread); throws when its check fails.
  void finish(size_t i, const SourceReader& reader, const CancelToken* cancel) const;

 private:
  struct Watch {
    int file;
    uint64_t begin, end;
    std::unique_ptr<SourceCheck::Pass> pass;
  };
  std::vector<Watch> watches_;  // by (file, begin): ends ascend too, as ranges do not overlap
};

}  // namespace ckpt
