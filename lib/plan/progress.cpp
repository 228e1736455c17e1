#include "plan/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "core/sizes.h"

namespace ckpt {

static double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(uint64_t total, bool enabled) : total_(total), enabled_(enabled), start_(now_seconds()) {
  if (!enabled_) return;
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      draw(false);
      for (int i = 0; i < 10 && !stop_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
}

Progress::~Progress() { finish(); }

void Progress::finish() {
  if (!enabled_ || stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  draw(true);
}

void Progress::draw(bool final_line) {
  uint64_t done = done_.load();
  double pct = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  double dt = now_seconds() - start_;
  double rate = dt > 0 ? static_cast<double>(done) / dt : 0;
  const int width = 30;
  int filled = static_cast<int>(pct / 100.0 * width);
  char bar[width + 1];
  for (int i = 0; i < width; ++i) bar[i] = i < filled ? '=' : ' ';
  bar[width] = 0;
  std::fprintf(stderr, "\r[%s] %5.1f%% %s / %s  %s/s   ", bar, pct, format_bytes(done).c_str(),
               format_bytes(total_).c_str(), format_bytes(static_cast<uint64_t>(rate)).c_str());
  if (final_line) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace ckpt
