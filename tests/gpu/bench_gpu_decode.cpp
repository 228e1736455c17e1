// The batch-1 decode step under its CUDA graph against its floor (issue 15, "Fast"): the floor is
// the weight bytes the step reads (every Linear and lm_head in its device form, not the embedding
// table, of which a step reads one row) divided by the HBM read bandwidth measured in this run by
// a kernel reading 4 GiB (kernels/gpu_info.h). Goal: step <= 1.3x the floor.
//
// Models come from CKPT_BENCH_MODELS (paths separated by ':'), written by
// tests/bench/gpu_decode.sh (an 8B-shaped bf16 checkpoint from ckpt_make_synthetic and its FP8
// output); under ctest without CKPT_BENCH=1 it skips. Per model, one "BENCH" line:
//   BENCH decode <path> <formats> weights <GB> read <GB/s> floor <ms> step <ms> ratio <x>
// plus the prefill time of 32 tokens and the eager (no graph) step for comparison.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "cuda_check.h"
#include "gpu_info.h"
#include "model/model_weights.h"
#include "model/compare.h"
#include "runtime/gpu_forward.h"

using namespace ckpt;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Median of `reps` timings of `steps` back-to-back steps, per step, in ms.
template <class Fn>
double median_step_ms(Fn&& step, ckpt::cuda::GpuForward& g, int steps, int reps) {
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    g.synchronize();
    const auto t = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) step();
    g.synchronize();
    ms.push_back(seconds_since(t) * 1e3 / steps);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

TEST(GpuDecodeBench, GraphStepAgainstTheFloor) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  if (!std::getenv("CKPT_BENCH")) GTEST_SKIP() << "benchmark: set CKPT_BENCH=1 (tests/bench/gpu_decode.sh)";
  const char* list = std::getenv("CKPT_BENCH_MODELS");
  if (!list || !*list) GTEST_SKIP() << "set CKPT_BENCH_MODELS=DIR[:DIR...] (tests/bench/gpu_decode.sh writes them)";
  std::printf("BENCH device %s\n", cuda::device_description(0).c_str());
  double gbps = 0;
  CKPT_CUDA(cuda::measure_read_gbps(uint64_t{4} << 30, 10, &gbps));
  std::printf("BENCH hbm-read 4 GiB kernel: %.0f GB/s (median of 10)\n", gbps);

  std::stringstream paths(list);
  for (std::string path; std::getline(paths, path, ':');) {
    auto t = std::chrono::steady_clock::now();
    auto m = model::Model::open(path);
    const uint64_t prefill = 32, steps = 20, reps = 5, capacity = prefill + 8 + 2 * steps * reps + 8;
    cuda::GpuForward g(*m, 1, capacity);
    const double load_s = seconds_since(t);
    const uint64_t V = m->config().vocab;
    const model::TokenIds ids = model::seeded_token_ids(V, 1, prefill, 3);

    t = std::chrono::steady_clock::now();
    const std::vector<double> first = g.forward(ids.ids, prefill);
    const double prefill_ms = seconds_since(t) * 1e3;
    ASSERT_TRUE(std::isfinite(first.back())) << path;

    // Graph decode: the first call captures; then timed steps (each uploads its id and position).
    int64_t next = 17;
    std::vector<double> logits = g.decode({next});
    for (double v : logits) ASSERT_TRUE(std::isfinite(v)) << path << ": non-finite logit in the decode step";
    const std::string no_graph = g.graph_unsupported();
    auto graph_step = [&] { g.enqueue_decode({next = (next * 31 + 7) % int64_t(V)}); };
    const double graph_ms = median_step_ms(graph_step, g, steps, reps);
    auto eager_step = [&] { g.forward({next = (next * 31 + 7) % int64_t(V)}, 1); };
    const double eager_ms = median_step_ms(eager_step, g, 4, 3);

    const double bytes = static_cast<double>(g.step_weight_bytes());
    const double floor_ms = bytes / (gbps * 1e9) * 1e3;
    const double ratio = graph_ms / floor_ms;
    std::printf("BENCH decode %s (%s, %zu layers) load %.1f s, prefill %llu tokens %.1f ms\n", path.c_str(),
                m->formats().c_str(), m->layers().size(), load_s, static_cast<unsigned long long>(prefill), prefill_ms);
    std::printf("BENCH decode %s weights %.3f GB read %.0f GB/s floor %.3f ms step %.3f ms ratio %.2f (goal <= 1.3; "
                "eager step %.3f ms)%s%s\n",
                path.c_str(), bytes / 1e9, gbps, floor_ms, graph_ms, ratio, eager_ms,
                no_graph.empty() ? "" : " NO GRAPH: ", no_graph.c_str());
    std::fflush(stdout);
  }
}
