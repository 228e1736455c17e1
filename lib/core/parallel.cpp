#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace ckpt {

int Workers::count() const {
  if (threads > 0) return threads;
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

Workers Workers::at_most(int n) const {
  Workers w = *this;
  w.threads = std::max(1, std::min(count(), n));
  return w;
}

void parallel_for(size_t n, const Workers& workers, const std::function<void(size_t)>& fn) {
  workers.check();
  if (n == 0) return;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) return;
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        workers.check();
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        stop = true;
        return;
      }
    }
  };
  const size_t t = std::min<size_t>(static_cast<size_t>(workers.count()), n);
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (size_t k = 1; k < t; ++k) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

void parallel_for_ordered(size_t n, const Workers& workers, size_t window, const std::function<void(size_t)>& produce,
                          const std::function<void(size_t)>& consume) {
  if (window == 0) throw std::logic_error("parallel_for_ordered: window 0");
  workers.check();
  std::mutex m;
  std::condition_variable cv;
  size_t next = 0;                     // the next item to consume
  std::vector<uint8_t> done(window);   // produced and not yet consumed, by i % window
  bool consuming = false, failed = false;
  // The token is checked here, inside the item, rather than by parallel_for before it: an item
  // taken and then abandoned would leave the workers waiting on its window forever, where a
  // failure here wakes them.
  Workers inner = workers;
  inner.cancel = nullptr;
  parallel_for(n, inner, [&](size_t i) {
    try {
      workers.check();
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return i < next + window || failed; });
        if (failed) return;
      }
      produce(i);
      std::unique_lock<std::mutex> lock(m);
      done[i % window] = 1;
      if (consuming) return;  // the consuming worker takes it in turn
      consuming = true;
      while (next < n && done[next % window] && !failed) {
        done[next % window] = 0;
        lock.unlock();
        consume(next);
        lock.lock();
        ++next;
        cv.notify_all();
      }
      consuming = false;
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      failed = true;
      cv.notify_all();
      throw;
    }
  });
}

}  // namespace ckpt
