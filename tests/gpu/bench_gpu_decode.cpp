// The batch-1 decode step under its CUDA graph against its floor (issue 15, "Fast"): the floor is
// the weight bytes the step reads (every Linear and lm_head in its device form, not the embedding
// table, of which a step reads one row) divided by the HBM read bandwidth measured in this run by
// a kernel reading 4 GiB (kernels/gpu_info.h). Goal: step <= 1.3x the floor.
//
// Models come from CKPT_BENCH_MODELS (paths separated by ':'), written by
// tests/bench/gpu_decode.sh (an 8B-shaped bf16 checkpoint from ckpt_make_synthetic and its FP8
// output); under ctest without CKPT_BENCH=1 it skips. Per model, one "BENCH" line:
//   BENCH decode <path> <formats> weights <GB> read <GB/s> floor <ms> step <ms> ratio <x>
// plus the prefill time of 32 tokens and the eager (no graph) step for comparison, and "BENCH
// gemv" lines: the decode GEMV alone on each Linear group of layer 0 and on lm_head, launched as
// the step launches it (the RMSNorm and SiLU * up folded in where the step folds them: "+norm",
// "+norm+silu"), bandwidth against the read kernel's, and how much of the step the GEMVs account for.
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
#include "runtime/device_linear.h"
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

// The decode GEMV on its own at batch 1: each Linear group of layer 0 as the step launches it
// (q/k/v and gate/up fused, one launch each), and lm_head, timed over back-to-back launches (each
// a programmatic dependent of the one before, as in the step; weights not in L2), with
// their bytes over the time against the read kernel's bandwidth; then the layers' share of the
// graph step (layer 0's time x layers + lm_head), so the rest of the step (norms, rope,
// attention, activations, launch gaps) reads as the difference.
void bench_linears(const model::Model& m, const std::string& path, double gbps, double step_ms) {
  const model::Layer& L = m.layers()[0];
  const model::RankAttention& a = L.attention[0];
  const model::RankMlp& p = L.mlp[0];
  struct Group {
    std::string name;
    std::vector<const model::LinearWeights*> weights;
  };
  auto present = [](std::initializer_list<const model::RankLinear*> ls) {
    std::vector<const model::LinearWeights*> out;
    for (const model::RankLinear* l : ls)
      if (l->present()) out.push_back(l->weight.get());
    return out;
  };
  const std::vector<Group> groups = {{"q/k/v", present({&a.q, &a.k, &a.v, &a.qkv})},
                                     {"o", present({&a.o})},
                                     {"gate/up", present({&p.gate, &p.up, &p.gate_up})},
                                     {"down", present({&p.down})},
                                     {"lm_head", {m.lm_head()[0].table.get()}}};
  cuda::Stream stream = cuda::new_stream();
  const int sm_count = cuda::current_sm_count();
  double layer_us = 0, lm_us = 0;
  for (const Group& g : groups) {
    // Copies of the group's weights, cycled, at least 256 MB in all: a launch never finds its
    // weights in the 50 MB L2 left by the launch before (a step reads each weight once).
    std::vector<std::vector<cuda::DeviceLinear>> sets;
    std::vector<cuda::DeviceBuffer> ys;
    uint64_t bytes = 0, rows = 0;
    do {
      sets.emplace_back();
      for (const model::LinearWeights* w : g.weights) sets.back().emplace_back(*w, std::vector<double>{});
      if (sets.size() == 1)
        for (const cuda::DeviceLinear& l : sets[0]) {
          ys.emplace_back(l.n() * sizeof(float));
          bytes += l.bytes();
          rows += l.n();
        }
    } while (sets.size() * bytes < (uint64_t{256} << 20));
    std::vector<std::vector<std::pair<const cuda::DeviceLinear*, float*>>> outs(sets.size());
    for (size_t c = 0; c < sets.size(); ++c)
      for (size_t i = 0; i < sets[c].size(); ++i) outs[c].push_back({&sets[c][i], ys[i].as<float>()});
    const cuda::DeviceLinear& first = sets[0][0];
    // One row through each Linear: the Marlin ones need their scratch, as the runtime gives them.
    uint64_t marlin_bytes = 0;
    for (const cuda::DeviceLinear& l : sets[0])
      if (l.marlin()) marlin_bytes = std::max(marlin_bytes, cuda::DeviceLinear::marlin_scratch_bytes(l.n(), l.k(), 1, sm_count));
    cuda::DeviceBuffer marlin_scratch(std::max<uint64_t>(marlin_bytes, 1));
    const cuda::LinearContext ctx{stream, nullptr, nullptr, 0, marlin_scratch.as<uint8_t>(), marlin_bytes, sm_count};
    cuda::DeviceBuffer x(first.k() * sizeof(float)), norm(first.k() * sizeof(float)), act(first.n() * sizeof(float));
    CKPT_CUDA(cudaMemset(x.data(), 0, x.size()));
    CKPT_CUDA(cudaMemset(norm.data(), 0, norm.size()));
    size_t next = 0;
    // As the step launches the group (gpu_forward.cpp): q/k/v and lm_head with the RMSNorm before
    // them folded in, gate/up with it and SiLU * up, where the skinny kernel takes them ("+norm",
    // "+norm+silu" in the line); o and down, and anything else, unfused.
    const float eps = 1e-5f;
    std::string fused;
    auto launch = [&] {
      const auto& o = outs[next++ % outs.size()];
      if (g.name == "gate/up" &&
          cuda::DeviceLinear::apply_gated(*o[0].first, o.size() > 1 ? o[1].first : nullptr, x.as<float>(),
                                          norm.as<float>(), eps, 1, act.as<float>(), ctx)) {
        fused = "+norm+silu";
        return;
      }
      if ((g.name == "q/k/v" || g.name == "lm_head") &&
          cuda::DeviceLinear::apply_normed(o, x.as<float>(), norm.as<float>(), eps, 1, ctx)) {
        fused = "+norm";
        return;
      }
      cuda::DeviceLinear::apply_same_input(o, x.as<float>(), 1, ctx);
    };
    for (size_t i = 0; i < outs.size(); ++i) launch();
    cuda::Event start = cuda::new_event(), stop = cuda::new_event();
    const int reps = 50;
    CKPT_CUDA(cudaEventRecord(start, stream));
    for (int i = 0; i < reps; ++i) launch();
    CKPT_CUDA(cudaEventRecord(stop, stream));
    CKPT_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CKPT_CUDA(cudaEventElapsedTime(&ms, start, stop));
    const double us = ms * 1e3 / reps;
    (g.name == "lm_head" ? lm_us : layer_us) += us;
    std::printf("BENCH gemv %s %-7s %s [%llu x %llu] %.1f MB: %.2f us, %.0f GB/s (%.2f of the read kernel)\n", path.c_str(),
                (g.name + fused).c_str(), first.device_format().c_str(), static_cast<unsigned long long>(rows),
                static_cast<unsigned long long>(first.k()), bytes / 1e6, us, bytes / us / 1e3, bytes / us / 1e3 / gbps);
  }
  const double gemv_ms = (layer_us * m.layers().size() + lm_us) / 1e3;
  std::printf("BENCH gemv %s: layer %.1f us x %zu layers + lm_head %.1f us = %.3f ms of the %.3f ms graph step "
              "(the rest: %.3f ms)\n",
              path.c_str(), layer_us, m.layers().size(), lm_us, gemv_ms, step_ms, step_ms - gemv_ms);
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
    if (!m->config().moe) bench_linears(*m, path, gbps, graph_ms);
    std::fflush(stdout);
  }
}
