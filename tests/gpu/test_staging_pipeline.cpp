// The staging pipeline of the quantize engines (kernels/staging_pipeline.h): jobs of every size
// (growing and shrinking buffers, empty copies) come back in order with their own bytes, more
// jobs than slots overlap without one slot's output landing in another's, a throw from a job
// leaves after the jobs in flight finished and the thread's pipeline works again afterwards, and
// threads each use their own. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cuda_check.h"
#include "gpu_info.h"
#include "staging_pipeline.h"

using namespace ckpt;
using namespace ckpt::cuda;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine: the staging pipeline is not tested here"

uint8_t byte_of(size_t job, size_t i) { return static_cast<uint8_t>(job * 31 + i * 7 + (i >> 9)); }

// Job j: in = bytes byte_of(j, i) (sizes varying from 0 to ~3 MB); the "kernel" copies them device
// to device behind 256 bytes of 0xEE; out = that, whole. drain records the job order and checks.
std::vector<size_t> run_jobs(size_t count, size_t throw_at = SIZE_MAX) {
  std::vector<size_t> order;
  auto size_of = [](size_t j) { return j % 5 == 3 ? size_t{0} : (j * 977 * 1031) % (3u << 20) + 1; };
  StagingPipeline::Job job;
  job.sizes = [&](size_t j) { return StagingPipeline::Sizes{size_of(j), 256 + size_of(j) + 4096, 256 + size_of(j)}; };
  job.fill = [&](size_t j, uint8_t* in) {
    if (j == throw_at) throw std::runtime_error("fill failed");
    for (size_t i = 0; i < size_of(j); ++i) in[i] = byte_of(j, i);
  };
  job.launch = [&](size_t j, const StagingPipeline::Slot& s) {
    CKPT_CUDA(cudaMemsetAsync(s.dev_out, 0xEE, 256, s.stream));
    if (size_of(j)) CKPT_CUDA(cudaMemcpyAsync(s.dev_out + 256, s.dev_in, size_of(j), cudaMemcpyDeviceToDevice, s.stream));
  };
  job.drain = [&](size_t j, const StagingPipeline::Slot& s) {
    order.push_back(j);
    for (size_t i = 0; i < 256; ++i) ASSERT_EQ(s.host_out[i], 0xEE) << "job " << j;
    for (size_t i = 0; i < size_of(j); ++i) ASSERT_EQ(s.host_out[256 + i], byte_of(j, i)) << "job " << j << " byte " << i;
    for (size_t i = 0; i < size_of(j); i += 4099) ASSERT_EQ(s.host_in[i], byte_of(j, i)) << "job " << j << " input kept";
  };
  StagingPipeline::mine().run(count, job);
  return order;
}

}  // namespace

TEST(StagingPipeline, JobsComeBackInOrderWithTheirOwnBytes) {
  SKIP_WITHOUT_GPU();
  for (size_t count : {size_t{0}, size_t{1}, StagingPipeline::kSlots, size_t{17}}) {
    std::vector<size_t> want(count);
    for (size_t j = 0; j < count; ++j) want[j] = j;
    EXPECT_EQ(run_jobs(count), want) << count << " jobs";
  }
}

TEST(StagingPipeline, AThrowLeavesAfterTheJobsInFlightAndThePipelineWorksAgain) {
  SKIP_WITHOUT_GPU();
  EXPECT_THROW(run_jobs(12, 7), std::runtime_error);
  std::vector<size_t> want(9);
  for (size_t j = 0; j < want.size(); ++j) want[j] = j;
  EXPECT_EQ(run_jobs(9), want);
}

TEST(StagingPipeline, EachThreadHasItsOwn) {
  SKIP_WITHOUT_GPU();
  std::vector<std::thread> threads;
  std::vector<size_t> done(4, 0);
  std::vector<const StagingPipeline*> mine(4, nullptr);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      done[t] = run_jobs(11).size();
      mine[t] = &StagingPipeline::mine();
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(done[t], 11u) << t;
    for (int u = 0; u < t; ++u) EXPECT_NE(mine[t], mine[u]) << t << " " << u;
  }
}
