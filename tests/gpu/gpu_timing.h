// Timing on the GPU for the GPU tests and benchmarks: the median of several runs, each timed with
// CUDA events on the default stream, after untimed warm-up runs (module load, first-touch).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

namespace ckpt::test {

template <class Fn>
float median_event_ms(Fn&& fn, int reps, int warmup = 1) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(a);
    fn();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace ckpt::test
