// The one way library work runs in parallel: a fixed number of threads take items in order from
// a shared counter, check the caller's cancellation token before each item, and the first
// exception (or the cancellation) stops the rest and is rethrown in the caller. Results must be
// written per item (out[i]), never accumulated in completion order, so the output is the same at
// any thread count.
#pragma once

#include <cstddef>
#include <functional>

#include "core/cancel.h"

namespace ckpt {

// What a command passes down to parallel work: the thread count (--threads) and its token.
struct Workers {
  int threads = 0;                      // 0: one per online CPU
  const CancelToken* cancel = nullptr;  // nullptr: never cancelled

  int count() const;                    // threads, resolved (at least 1)
  void check() const { check_cancel(cancel); }
  // The same token with at most `n` threads (a phase whose items each use a thread of their own).
  Workers at_most(int n) const;
};

// Runs fn(i) for every i in [0, n) on up to workers.count() threads (the caller's thread is one
// of them); returns when every started item finished. Throws the first exception an item threw,
// or Error(Errc::kInterrupted) when the token was set; items not yet started are skipped then.
void parallel_for(size_t n, const Workers& workers, const std::function<void(size_t)>& fn);

// parallel_for for work whose results must leave in order (appended to one stream whose offsets
// depend on every earlier item's size): produce(i) runs on the workers like fn(i) above, and
// consume(i) runs for every i in increasing order once produce(i) returned, one at a time, on
// whichever worker finished the item it was waiting for; the others keep producing meanwhile.
// An item starts only while it is fewer than `window` items ahead of the next one to consume, so
// per-item buffers indexed i % window are never in use twice and memory stays bounded. Errors
// and cancellation as parallel_for: the first exception (of either function) stops the rest.
void parallel_for_ordered(size_t n, const Workers& workers, size_t window, const std::function<void(size_t)>& produce,
                          const std::function<void(size_t)>& consume);

}  // namespace ckpt
