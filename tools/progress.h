// The progress line the CLI draws on stderr while lib/ works (only on a terminal, and not with
// --quiet): the stage, a bar, percent, bytes, rate, ETA and the current file, fitted to the
// terminal's width on every redraw so it never wraps. lib/ reports through ProgressObserver.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "core/progress_observer.h"

namespace ckpt::cli {

// True when stderr is a terminal (progress is drawn only then).
bool stderr_is_tty();

// What one redraw shows.
struct ProgressState {
  std::string stage;
  uint64_t done = 0, total = 0;  // bytes; total 0: unknown
  double seconds = 0;            // since the stage began
  std::string current;           // the file being worked on
};

// The line for `state` in at most columns - 1 characters (the last column is left free so the
// cursor never wraps): the least useful parts go first as the terminal narrows.
std::string progress_line(const ProgressState& state, int columns);

class TerminalProgress : public ProgressObserver {
 public:
  // Draws only when `enabled` (stderr_is_tty() && !quiet, as the command decides).
  explicit TerminalProgress(bool enabled);
  ~TerminalProgress() override;
  TerminalProgress(const TerminalProgress&) = delete;
  TerminalProgress& operator=(const TerminalProgress&) = delete;

  void begin_stage(std::string_view stage, uint64_t total_bytes) override;
  void advance(uint64_t bytes) override { done_.fetch_add(bytes, std::memory_order_relaxed); }
  void current(std::string_view name) override;
  // Stops drawing and erases the line, so that what follows starts on a clean line.
  void end() override;
  // The observer lib/ takes: this one when drawing, nullptr otherwise.
  ProgressObserver* observer() { return enabled_ ? this : nullptr; }

 private:
  void draw();
  bool enabled_;
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;  // guards the fields below
  std::string stage_, current_;
  uint64_t total_ = 0;
  double start_ = 0;
  std::thread thread_;
};

}  // namespace ckpt::cli
