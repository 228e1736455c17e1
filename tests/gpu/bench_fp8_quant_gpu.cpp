// Bandwidth of the FP8 kernels against a device-to-device copy moving the same bytes, in the same
// run (tests/bench/gpu_quantize.sh runs this with CKPT_BENCH=1; under ctest it skips). Prints one
// "BENCH" line per kernel: bytes moved (read + written), medians of 15 timed runs after 3
// warm-ups, GB/s, and the ratio to the copy.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "fp8_quant.h"
#include "gpu_info.h"
#include "gpu_timing.h"

using namespace ckpt::cuda;

namespace {

#define CUDA_OK(x) ASSERT_EQ((x), cudaSuccess) << #x

double median_ms(const std::function<void()>& run) { return ckpt::test::median_event_ms(run, 15, 3); }

}  // namespace

TEST(Fp8QuantGpuBench, KernelsAgainstDeviceCopy) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  if (!std::getenv("CKPT_BENCH")) GTEST_SKIP() << "benchmark: set CKPT_BENCH=1 (tests/bench/gpu_quantize.sh)";
  // One weight chunk as the producers hand it over is at most 2^31 elements; use a
  // 28672 x 8192 bf16 matrix (a Llama-70B MLP projection): 470 MB in, 235 MB out.
  const uint64_t rows = 28672, cols = 8192, n = rows * cols;
  void *in = nullptr, *copy_dst = nullptr;
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  unsigned* amax = nullptr;
  double* partials = nullptr;
  CUDA_OK(cudaMalloc(&in, n * 2));
  CUDA_OK(cudaMalloc(&copy_dst, n * 2));
  CUDA_OK(cudaMalloc(&codes, n));
  CUDA_OK(cudaMalloc(&scales, sizeof(float) * rows * 64));
  CUDA_OK(cudaMalloc(&amax, sizeof(unsigned) * rows * 64));
  CUDA_OK(cudaMalloc(&partials, sizeof(double) * 3 * kFp8MaxCtas));
  // Finite bf16 values of every magnitude (0x3C00..0x3FFF patterns), scales of 1/448.
  std::vector<uint16_t> host(1 << 20);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<uint16_t>(0x3C00 + (i * 2654435761u >> 22) % 0x400) | ((i & 1) << 15);
  for (uint64_t off = 0; off < n; off += host.size())
    CUDA_OK(cudaMemcpy(static_cast<uint16_t*>(in) + off, host.data(), 2 * std::min<uint64_t>(host.size(), n - off), cudaMemcpyHostToDevice));
  std::vector<float> s(rows * 64, 1.0f / 448);
  CUDA_OK(cudaMemcpy(scales, s.data(), s.size() * 4, cudaMemcpyHostToDevice));

  auto copy_gbps = [&](uint64_t bytes_moved) {
    const uint64_t half = bytes_moved / 2;  // a copy reads and writes each byte
    double ms = median_ms([&] { cudaMemcpyAsync(copy_dst, in, half, cudaMemcpyDeviceToDevice); });
    return static_cast<double>(2 * half) / ms / 1e6;
  };
  std::printf("BENCH device %s\n", device_description(0).c_str());
  struct Case {
    const char* name;
    uint64_t br, bc;
  };
  for (Case c : {Case{"tensor", rows, cols}, Case{"block128", 128, 128}, Case{"channel", 1, cols}}) {
    Fp8ChunkDesc d{rows, cols, c.br, c.bc, 0, n, 0};
    int ctas = 0;
    double q_ms = median_ms([&] { fp8_quantize_launch(in, kFp8InBF16, d, scales, codes, partials, &ctas, nullptr); });
    CUDA_OK(cudaGetLastError());
    const uint64_t q_bytes = n * 2 + n;
    double q_gbps = q_bytes / q_ms / 1e6, q_copy = copy_gbps(q_bytes);
    std::printf("BENCH fp8_quantize %-8s %.1f MB moved  %.3f ms  %.0f GB/s  copy %.0f GB/s  ratio %.3f\n", c.name,
                q_bytes / 1e6, q_ms, q_gbps, q_copy, q_gbps / q_copy);
    double a_ms = median_ms([&] {
      cudaMemsetAsync(amax, 0, sizeof(unsigned) * rows * 64);
      fp8_amax_launch(in, kFp8InBF16, d, amax, nullptr);
    });
    CUDA_OK(cudaGetLastError());
    const uint64_t a_bytes = n * 2;
    double a_gbps = a_bytes / a_ms / 1e6, a_copy = copy_gbps(a_bytes);
    std::printf("BENCH fp8_amax     %-8s %.1f MB moved  %.3f ms  %.0f GB/s  copy %.0f GB/s  ratio %.3f\n", c.name,
                a_bytes / 1e6, a_ms, a_gbps, a_copy, a_gbps / a_copy);
  }
  cudaFree(in);
  cudaFree(copy_dst);
  cudaFree(codes);
  cudaFree(scales);
  cudaFree(amax);
  cudaFree(partials);
}
