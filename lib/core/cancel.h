// Cooperative cancellation. The caller owns the token and requests cancellation (tools/ does it
// from its SIGINT/SIGTERM handler); long-running library work checks it at its loop boundaries
// (every chunk, file, record or phase) and stops by throwing Error(Errc::kInterrupted), so the
// usual unwinding removes whatever was half-written. The library never installs signal handlers
// itself (zstd's rule: lib/ never prints, never exits, never owns signals).
#pragma once

#include <atomic>

namespace ckpt {

class CancelToken {
 public:
  // Async-signal-safe: a lock-free atomic store, callable from a signal handler.
  void request() noexcept { requested_.store(true, std::memory_order_relaxed); }
  bool requested() const noexcept { return requested_.load(std::memory_order_relaxed); }
  // Throws Error(Errc::kInterrupted) once cancellation was requested.
  void throw_if_requested() const;

 private:
  static_assert(std::atomic<bool>::is_always_lock_free, "a signal handler must be able to set the token");
  std::atomic<bool> requested_{false};
};

// The same, for an optional token (nullptr: never cancelled).
inline void check_cancel(const CancelToken* token) {
  if (token) token->throw_if_requested();
}

}  // namespace ckpt
