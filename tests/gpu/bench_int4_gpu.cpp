// Bandwidth of the INT4 quantize and Marlin relayout kernels against a device-to-device copy
// moving the same bytes, in the same run (tests/bench/gpu_int4_kernels.sh runs this with
// CKPT_BENCH=1; under ctest it skips). One "BENCH" line per kernel: bytes moved (read + written),
// median of 15 timed runs after 3 warm-ups, GB/s, and the ratio to the copy (target >= 0.70 on
// the H200, issues 13 and 14).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "cuda_check.h"
#include "gpu_info.h"
#include "gpu_timing.h"
#include "int4_quant.h"
#include "marlin_repack.h"
#include "ops/float_convert.h"

using namespace ckpt;

namespace {

double median_ms(const std::function<void()>& run) { return test::median_event_ms(run, 15, 3); }

// GB/s of a device copy moving `bytes` in all (half read, half written).
double copy_gbps(void* dst, const void* src, uint64_t bytes) {
  const uint64_t half = bytes / 2;
  const double ms = median_ms([&] { cudaMemcpyAsync(dst, src, half, cudaMemcpyDeviceToDevice); });
  return static_cast<double>(2 * half) / ms / 1e6;
}

void line(const char* kernel, const char* what, uint64_t bytes, double ms, double copy) {
  const double gbps = static_cast<double>(bytes) / ms / 1e6;
  std::printf("BENCH %-14s %-22s %8.1f MB moved  %7.3f ms  %5.0f GB/s  copy %5.0f GB/s  ratio %.3f\n", kernel, what,
              static_cast<double>(bytes) / 1e6, ms, gbps, copy, gbps / copy);
}

}  // namespace

TEST(Int4GpuBench, KernelsAgainstDeviceCopy) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  if (!std::getenv("CKPT_BENCH")) GTEST_SKIP() << "benchmark: set CKPT_BENCH=1 (tests/bench/gpu_int4_kernels.sh)";
  // A Llama-70B MLP projection: W [N = 28672, K = 8192] bf16, 470 MB.
  const uint64_t n = 28672, k = 8192;
  cuda::DeviceBuffer in(2 * n * k), copy_dst(2 * n * k), weights(n * k / 2), scales(4 * n * (k / 32)),
      zeros(n * (k / 32) / 2 + 64), g_idx(4 * k), marlin(n * k / 2);
  std::vector<uint16_t> host(1 << 20);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (auto& h : host) h = ops::f32_to_bf16(normal(rng));
  for (uint64_t off = 0; off < n * k; off += host.size())
    CKPT_CUDA(cudaMemcpy(in.as<uint16_t>() + off, host.data(), 2 * std::min<uint64_t>(host.size(), n * k - off),
                         cudaMemcpyHostToDevice));
  std::printf("BENCH device %s\n", cuda::device_description(0).c_str());

  struct Case {
    const char* name;
    int format;
    bool sym;
    int scale_type;
    uint64_t group;
  };
  const Case cases[] = {{"gptq g128 sym", 0, true, 0, 128},  {"awq g128 asym", 1, false, 0, 128},
                        {"ct g128 sym", 2, true, 1, 128},    {"ct g128 asym", 2, false, 1, 128},
                        {"gptq g32 sym", 0, true, 0, 32},    {"gptq channel sym", 0, true, 0, k}};
  cuda::Int4QuantKernel q;
  for (const Case& c : cases) {
    cuda::Int4QuantArgs a;
    a.format = c.format;
    a.in_type = 0;
    a.scale_type = c.scale_type;
    a.symmetric = c.sym;
    a.n = n;
    a.k = k;
    a.group = c.group;
    a.rows = n;
    a.in = in.data();
    a.weights = weights.as<uint32_t>();
    a.scales = scales.data();
    a.zeros = c.format == 2 && c.sym ? nullptr : zeros.as<uint32_t>();
    a.g_idx = c.format == 0 ? g_idx.as<int32_t>() : nullptr;
    ASSERT_EQ(cuda::Int4QuantKernel::can_implement(a), cuda::Int4Status::kSuccess) << c.name;
    cuda::DeviceBuffer ws(cuda::Int4QuantKernel::get_workspace_size(a));
    const double ms = median_ms([&] { q.run(a, ws.data(), nullptr); });
    CKPT_CUDA(cudaGetLastError());
    const uint64_t groups = n * (k / c.group);
    const uint64_t bytes = 2 * n * k + n * k / 2 + 2 * groups + (a.zeros ? groups / 2 : 0);
    line("int4_quantize", c.name, bytes, ms, copy_gbps(copy_dst.data(), in.data(), bytes));
  }

  // Marlin relayout of the same weight as INT4: [K/16, 2N] from each source layout.
  CKPT_CUDA(cudaMemcpy(marlin.data(), in.data(), marlin.size(), cudaMemcpyDeviceToDevice));  // any codes
  std::vector<int32_t> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  cuda::DeviceBuffer d_perm(4 * k);
  CKPT_CUDA(cudaMemcpy(d_perm.data(), perm.data(), 4 * k, cudaMemcpyHostToDevice));
  cuda::MarlinRepackKernel r;
  const char* names[] = {"from gptq", "from awq", "from ct"};
  for (int source = 0; source < 4; ++source) {
    cuda::MarlinRepackArgs a;
    a.source = source == 3 ? 0 : source;
    a.n = n;
    a.k = k;
    a.kt0 = 0;
    a.kt1 = k / 16;
    a.src = marlin.as<uint32_t>();
    a.perm = source == 3 ? d_perm.as<int32_t>() : nullptr;
    a.out = weights.as<uint32_t>();
    const double ms = median_ms([&] { r.run(a, nullptr); });
    CKPT_CUDA(cudaGetLastError());
    const uint64_t bytes = n * k;  // n k / 2 read + n k / 2 written
    line("marlin_repack", source == 3 ? "from gptq act-order" : names[source], bytes, ms,
         copy_gbps(copy_dst.data(), in.data(), bytes));
  }
}
