// A progress line on stderr while a plan runs (only on a terminal): percent, bytes and rate.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace ckpt {

class Progress {
 public:
  Progress(uint64_t total_bytes, bool enabled);
  ~Progress();
  void add(uint64_t bytes) { done_.fetch_add(bytes, std::memory_order_relaxed); }
  void finish();

 private:
  void draw(bool final_line);
  uint64_t total_;
  bool enabled_;
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  double start_;
};

// True when stderr is a terminal (progress is drawn only then).
bool stderr_is_tty();

}  // namespace ckpt
