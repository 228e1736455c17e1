// How library work reports progress to its caller. The library never draws anything: a command
// passes an observer (tools/progress.h draws one on a terminal) and long-running work tells it
// what it is doing. Every method may be called from any worker thread, concurrently.
#pragma once

#include <cstdint>
#include <string_view>

namespace ckpt {

class ProgressObserver {
 public:
  virtual ~ProgressObserver() = default;
  // A stage of the work begins ("write", "checksums (cpu)", "load"...), `total_bytes` long (0
  // when unknown). Stages run one after another; each ends at the next begin_stage or at end().
  virtual void begin_stage(std::string_view stage, uint64_t total_bytes) {}
  // `bytes` more of the current stage are done.
  virtual void advance(uint64_t bytes) {}
  // The file (or tensor) being worked on now.
  virtual void current(std::string_view name) {}
  // All work ended (successfully or not); nothing is reported after this.
  virtual void end() {}
};

// Null-safe calls, for work that takes an optional observer.
inline void progress_begin(ProgressObserver* p, std::string_view stage, uint64_t total) {
  if (p) p->begin_stage(stage, total);
}
inline void progress_advance(ProgressObserver* p, uint64_t bytes) {
  if (p) p->advance(bytes);
}
inline void progress_current(ProgressObserver* p, std::string_view name) {
  if (p) p->current(name);
}

}  // namespace ckpt
