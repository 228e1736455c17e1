#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/sizes.h"

namespace ckpt::cli {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The terminal's width now (it may have been resized), else $COLUMNS, else 80.
int terminal_columns() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    int v = std::atoi(c);
    if (v > 0) return v;
  }
  return 80;
}

std::string format_duration(double s) {
  char buf[32];
  const long t = std::lround(s);
  if (t < 60) std::snprintf(buf, sizeof buf, "%lds", t);
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  return buf;
}

}  // namespace

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

std::string progress_line(const ProgressState& s, int columns) {
  const size_t width = columns > 1 ? static_cast<size_t>(columns - 1) : 0;
  const bool known = s.total > 0;
  const double frac = known ? std::min(1.0, static_cast<double>(s.done) / static_cast<double>(s.total)) : 0;
  const double rate = s.seconds > 0 ? static_cast<double>(s.done) / s.seconds : 0;
  char pct[16] = "";
  if (known) std::snprintf(pct, sizeof pct, "%5.1f%%", 100.0 * frac);
  std::string bytes = known ? format_bytes(s.done) + "/" + format_bytes(s.total) : format_bytes(s.done);
  std::string speed = rate > 0 ? format_bytes(static_cast<uint64_t>(rate)) + "/s" : "";
  std::string eta = known && rate > 0 && s.done < s.total
                        ? "ETA " + format_duration(static_cast<double>(s.total - s.done) / rate)
                        : "";
  // Parts in order of importance; each is dropped (from the least important) until the line fits.
  std::string parts[] = {s.stage, pct, eta, bytes, speed, s.current};
  auto join = [&](size_t n) {
    std::string line;
    for (size_t i = 0; i < n; ++i)
      if (!parts[i].empty()) line += (line.empty() ? "" : "  ") + parts[i];
    return line;
  };
  size_t n = std::size(parts);
  std::string line = join(n);
  // The current file shrinks before anything is dropped: to its own name (the directory is what
  // the user gave), then keeping its end, the distinctive part.
  if (line.size() > width && !s.current.empty()) {
    const size_t slash = s.current.rfind('/');
    if (slash != std::string::npos && slash + 1 < s.current.size()) {
      parts[5] = s.current.substr(slash + 1);
      line = join(n);
    }
  }
  if (line.size() > width && !parts[5].empty()) {
    const std::string name = parts[5];
    const size_t over = line.size() - width;
    if (over + 4 < name.size()) {
      parts[5] = "..." + name.substr(over + 3);
      line = join(n);
    }
  }
  while (line.size() > width && n > 1) line = join(--n);
  if (line.size() > width) line.resize(width);
  // A bar between the stage and the rest, when at least 12 columns are left for it.
  if (known && width >= line.size() + 14) {
    const size_t bar = std::min<size_t>(30, width - line.size() - 4);
    const size_t filled = static_cast<size_t>(frac * static_cast<double>(bar));
    std::string b = " [" + std::string(filled, '=') + std::string(bar - filled, ' ') + "]";
    line.insert(s.stage.size(), b);
  }
  return line;
}

TerminalProgress::TerminalProgress(bool enabled) : enabled_(enabled), start_(now_seconds()) {
  if (!enabled_) return;
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      draw();
      for (int i = 0; i < 10 && !stop_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
}

TerminalProgress::~TerminalProgress() { end(); }

void TerminalProgress::begin_stage(std::string_view stage, uint64_t total) {
  std::lock_guard<std::mutex> lock(mutex_);
  stage_ = stage;
  total_ = total;
  current_.clear();
  done_ = 0;
  start_ = now_seconds();
}

void TerminalProgress::current(std::string_view name) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (current_ != name) current_ = name;
}

void TerminalProgress::end() {
  if (!enabled_ || stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  std::fputs("\r\x1b[K", stderr);  // erase the line
  std::fflush(stderr);
}

void TerminalProgress::draw() {
  ProgressState s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stage_.empty()) return;
    s.stage = stage_;
    s.total = total_;
    s.current = current_;
    s.seconds = now_seconds() - start_;
  }
  s.done = done_.load();
  const std::string line = progress_line(s, terminal_columns());
  std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
  std::fflush(stderr);
}

}  // namespace ckpt::cli
