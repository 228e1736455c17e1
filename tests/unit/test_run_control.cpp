// How a caller controls library work (core/parallel.h, core/cancel.h, core/progress_observer.h):
// parallel_for runs every item once at any thread count and stops on the first error or on the
// token; the executor reports its stages, bytes and files to an observer, and a cancellation at
// any stage (chunks, source checks, side files, the manifest) leaves nothing behind.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>

#include "commands/rechunk.h"
#include "core/cancel.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/progress_observer.h"
#include "plan/executor.h"
#include "test_support.h"

using namespace ckpt;
using test::ScratchDir;
using test::testdata;
namespace fs = std::filesystem;

TEST(ParallelFor, EveryItemOnceAtAnyThreadCount) {
  for (int threads : {1, 2, 3, 8}) {
    std::vector<std::atomic<int>> seen(1000);
    parallel_for(seen.size(), Workers{threads, nullptr}, [&](size_t i) { seen[i].fetch_add(1); });
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i << " at " << threads;
  }
  parallel_for(0, Workers{4, nullptr}, [](size_t) { FAIL() << "no items"; });
}

TEST(ParallelFor, UsesTheRequestedThreadsAndNoMore) {
  for (int threads : {1, 3}) {
    std::mutex m;
    std::unordered_set<std::thread::id> ids;
    std::atomic<int> running{0}, peak{0};
    parallel_for(64, Workers{threads, nullptr}, [&](size_t) {
      const int now = ++running;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {}
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      --running;
      std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
    });
    EXPECT_LE(peak.load(), threads);
    EXPECT_LE(static_cast<int>(ids.size()), threads);
  }
}

TEST(ParallelFor, TheFirstErrorStopsTheRestAndIsRethrown) {
  std::atomic<int> ran{0};
  std::atomic<bool> thrown{false};
  try {
    // Items after 10 wait for it: on a loaded machine the thread holding item 10 could otherwise
    // be descheduled while the others finish every item before the error exists. And each of them
    // then takes 50 us: `thrown` is set before the exception is built and caught (slow under
    // ASan), so items that cost nothing could all finish in that window (~1.7 s of them on 3
    // threads if nothing stopped them).
    parallel_for(100000, Workers{4, nullptr}, [&](size_t i) {
      ++ran;
      if (i == 10) {
        thrown = true;
        fail(Errc::kIo, "f", "", "boom");
      }
      while (i > 10 && !thrown) std::this_thread::yield();
      if (i > 10) std::this_thread::sleep_for(std::chrono::microseconds(50));
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
  }
  EXPECT_LT(ran.load(), 100000);
}

TEST(ParallelFor, StopsWhenTheTokenIsSet) {
  CancelToken token;
  std::atomic<int> ran{0};
  try {
    parallel_for(100000, Workers{3, &token}, [&](size_t i) {
      if (++ran == 50) token.request();
    });
    FAIL() << "not interrupted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInterrupted);
  }
  EXPECT_LT(ran.load(), 100);  // at most one item per thread after the request
  CancelToken set;
  set.request();
  EXPECT_THROW(parallel_for(1, Workers{1, &set}, [](size_t) {}), Error);
}

// Consumed in order, each once, never more than `window` produced ahead of the consumer (the
// slot i % window is free when i starts), at any thread count and with uneven item times.
TEST(ParallelForOrdered, ConsumesInOrderWithinTheWindow) {
  for (int threads : {1, 2, 3, 8}) {
    for (size_t window : {size_t{1}, size_t{2}, size_t{5}}) {
      const size_t n = 300;
      std::vector<std::atomic<int>> slot_busy(window);
      std::vector<size_t> order;
      std::atomic<size_t> consumed{0};
      std::atomic<bool> overlap{false};
      parallel_for_ordered(
          n, Workers{threads, nullptr}, window,
          [&](size_t i) {
            if (slot_busy[i % window].fetch_add(1) != 0) overlap = true;
            if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
          },
          [&](size_t i) {
            order.push_back(i);  // one consumer at a time: no lock needed
            slot_busy[i % window].fetch_sub(1);
            ++consumed;
          });
      ASSERT_FALSE(overlap) << threads << " threads, window " << window;
      ASSERT_EQ(order.size(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(order[i], i);
    }
  }
  parallel_for_ordered(0, Workers{2, nullptr}, 4, [](size_t) { FAIL(); }, [](size_t) { FAIL(); });
}

// An error in either function, or the token, stops the rest without leaving a worker waiting on
// the window for an item that will never be produced.
TEST(ParallelForOrdered, ErrorsAndCancellationStopEveryWorker) {
  for (int where : {0, 1}) {
    std::atomic<int> consumed{0};
    try {
      parallel_for_ordered(
          100000, Workers{3, nullptr}, 2,
          [&](size_t i) {
            if (where == 0 && i == 20) fail(Errc::kIo, "f", "", "produce");
          },
          [&](size_t i) {
            ++consumed;
            if (where == 1 && i == 20) fail(Errc::kIo, "f", "", "consume");
          });
      FAIL() << "no exception";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kIo);
    }
    EXPECT_LE(consumed.load(), 21);
  }
  CancelToken token;
  std::atomic<int> produced{0};
  try {
    parallel_for_ordered(
        100000, Workers{3, &token}, 4, [&](size_t) {
          if (++produced == 50) token.request();
        },
        [](size_t) {});
    FAIL() << "not interrupted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInterrupted);
  }
  EXPECT_LT(produced.load(), 60);
}

namespace {

// Records what the executor reports; optionally requests cancellation when a stage begins.
class Recorder : public ProgressObserver {
 public:
  void begin_stage(std::string_view stage, uint64_t total) override {
    std::lock_guard<std::mutex> lock(m);
    stages.emplace_back(stage);
    totals.push_back(total);
    if (cancel && stage == cancel_at) cancel->request();
  }
  void advance(uint64_t bytes) override { done += bytes; }
  void current(std::string_view name) override {
    std::lock_guard<std::mutex> lock(m);
    names.emplace(name);
  }
  std::mutex m;
  std::vector<std::string> stages;
  std::vector<uint64_t> totals;
  std::set<std::string> names;
  std::atomic<uint64_t> done{0};
  CancelToken* cancel = nullptr;
  std::string cancel_at;
};

}  // namespace

TEST(Executor, ReportsItsStagesBytesAndFilesToTheObserver) {
  ScratchDir d;
  Checkpoint ck = open_checkpoint(testdata("llama-sharded"));
  Plan plan = plan_rechunk(ck, 50'000);
  Recorder r;
  ExecOptions o;
  o.threads = 2;
  o.progress = &r;
  execute(plan, d / "out", o);
  ASSERT_FALSE(r.stages.empty());
  EXPECT_EQ(r.stages.front(), "write");
  EXPECT_EQ(r.totals.front(), plan.tensor_bytes());
  EXPECT_EQ(r.done.load(), plan.tensor_bytes());
  for (const auto& f : plan.files) EXPECT_TRUE(r.names.count(f.name)) << f.name;
  EXPECT_TRUE(r.names.count("config.json"));  // side files are reported too
}

TEST(Executor, CancelledAtAnyStageLeavesNothingBehind) {
  for (const char* stage : {"write", "verify", "side files"}) {
    ScratchDir d;
    Checkpoint ck = open_checkpoint(testdata("llama-sharded"));
    Plan plan = plan_rechunk(ck, 50'000);
    CancelToken token;
    Recorder r;
    r.cancel = &token;
    r.cancel_at = stage;
    ExecOptions o;
    o.threads = 2;
    o.progress = &r;
    o.cancel = &token;
    try {
      execute(plan, d / "out", o);
      ADD_FAILURE() << "not interrupted at " << stage;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kInterrupted) << stage;
    }
    EXPECT_TRUE(fs::is_empty(d.path())) << "left behind after an interruption at " << stage;
  }
}

TEST(Executor, AnAlreadyCancelledTokenWritesNothing) {
  ScratchDir d;
  Checkpoint ck = open_checkpoint(testdata("llama"));
  CancelToken token;
  token.request();
  ExecOptions o;
  o.cancel = &token;
  EXPECT_THROW(execute(plan_rechunk(ck, kDefaultMaxShardBytes), d / "out", o), Error);
  EXPECT_TRUE(fs::is_empty(d.path()));
}

TEST(OpenCheckpoint, StopsOnTheToken) {
  CancelToken token;
  token.request();
  OpenOptions oo;
  oo.cancel = &token;
  try {
    open_checkpoint(testdata("llama-sharded"), oo);
    FAIL() << "not interrupted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInterrupted);
  }
}
