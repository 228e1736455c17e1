// GPTQ on the GPU (kernels/calib/gptq_device.h) against its arithmetic floor, for the Linears of
// Llama-3-8B (hidden 4096, intermediate 14336). Skips unless CKPT_BENCH=1; run with
//   CKPT_BENCH=1 build/tests/bench_gptq_gpu
// One "BENCH" line per step: the measured time (median; CUDA events for the Hessian, wall clock
// for the solve, which synchronises for its Cholesky checks) beside the floor, the step's FLOPs at
// the device's peak rate from its SM count and clock (sm_90: 4096 dense BF16 tensor-core FLOP and
// 256 FP32 FLOP per SM per clock; sm_80: 2048 and 128):
//   Hessian of 4096 tokens, BF16 activations: 2·tokens·k² at the BF16 tensor-core rate
//     (float32 activations are also timed, against the FP32 rate: no tensor cores without TF32);
//   GPTQ solve: n·k² (the trailing lazy-batch updates, Σ_blocks 2·n·128·(k − i2)) + k³/3 (one
//     Cholesky) at the FP32 rate. The route factorises three times (chol, potri, chol of the
//     inverse: 4k³/3 in all), as the references do; the floor counts one.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "calib/gptq_device.h"
#include "cuda_check.h"
#include "gpu_info.h"
#include "gpu_timing.h"
#include "ops/float_convert.h"

using namespace ckpt;

namespace {

struct Peak {
  double bf16 = 0, fp32 = 0;  // FLOP/s, 0 when unknown
};

Peak device_peak() {
  int dev = 0, sms = 0, khz = 0, major = 0;
  CKPT_CUDA(cudaGetDevice(&dev));
  CKPT_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CKPT_CUDA(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev));
  CKPT_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  const double per_clock = static_cast<double>(sms) * khz * 1e3;
  if (major == 9) return {4096 * per_clock, 256 * per_clock};
  if (major == 8) return {2048 * per_clock, 128 * per_clock};
  return {};
}

// Device [count] values of a cheap deterministic pseudo-random sequence, uniform in (-a, a).
std::vector<float> pseudo_random(uint64_t count, float a, uint32_t seed) {
  std::vector<float> v(count);
  uint64_t s = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = a * (static_cast<float>(s >> 40) / 8388608.0f - 1.0f);
  }
  return v;
}

void line(const char* step, const char* shape, double ms, double flops, double peak) {
  if (peak > 0) {
    const double floor_ms = flops / peak * 1e3;
    std::printf("BENCH %-22s %-20s %9.3f ms  %7.1f TFLOP/s  floor %8.3f ms  ratio %.3f\n", step, shape, ms,
                flops / ms / 1e9, floor_ms, floor_ms / ms);
  } else {
    std::printf("BENCH %-22s %-20s %9.3f ms  %7.1f TFLOP/s  (no peak known for this device)\n", step, shape, ms,
                flops / ms / 1e9);
  }
}

}  // namespace

TEST(GptqGpuBench, Llama3_8BLinearsAgainstTheArithmeticFloor) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  if (!std::getenv("CKPT_BENCH")) GTEST_SKIP() << "benchmark: set CKPT_BENCH=1";
  const Peak peak = device_peak();
  std::printf("BENCH device %s: peak BF16 tensor %.0f TFLOP/s, FP32 %.1f TFLOP/s\n",
              cuda::device_description(0).c_str(), peak.bf16 / 1e12, peak.fp32 / 1e12);
  const uint64_t tokens = 4096;

  // Hessians of 4096 tokens for the two input widths of the 8B model.
  for (uint64_t k : {uint64_t{4096}, uint64_t{14336}}) {
    const std::vector<float> xf = pseudo_random(tokens * k, 1.0f, 1);
    std::vector<uint16_t> xb(xf.size());
    for (size_t i = 0; i < xf.size(); ++i) xb[i] = ops::f32_to_bf16(xf[i]);
    cuda::DeviceBuffer df(xf.size() * 4), db(xb.size() * 2);
    CKPT_CUDA(cudaMemcpy(df.data(), xf.data(), df.size(), cudaMemcpyHostToDevice));
    CKPT_CUDA(cudaMemcpy(db.data(), xb.data(), db.size(), cudaMemcpyHostToDevice));
    const double flops = 2.0 * tokens * static_cast<double>(k) * k;
    char shape[32];
    std::snprintf(shape, sizeof shape, "k %llu", static_cast<unsigned long long>(k));
    cuda::DeviceHessian hb(k, nullptr), hf(k, nullptr);
    const double ms_b = test::median_event_ms([&] { hb.add(db.data(), cuda::DeviceHessian::Input::kBF16, tokens); }, 7, 2);
    line("hessian bf16 4096 tok", shape, ms_b, flops, peak.bf16);
    const double ms_f = test::median_event_ms([&] { hf.add(df.data(), cuda::DeviceHessian::Input::kF32, tokens); }, 3, 1);
    line("hessian f32 4096 tok", shape, ms_f, flops, peak.fp32);
  }

  // The GPTQ solve of the three Linear shapes: g128 symmetric (GPTQ format), act-order on, H from
  // 4096 BF16 tokens (rank-deficient for k = 14336: the 1 % damping makes it definite, as in
  // practice for wide inputs and short calibration sets).
  struct Shape {
    const char* name;
    uint64_t n, k;
  };
  const Shape shapes[] = {{"q_proj 4096x4096", 4096, 4096}, {"gate 14336x4096", 14336, 4096},
                          {"down 4096x14336", 4096, 14336}};
  for (const Shape& sh : shapes) {
    const uint64_t n = sh.n, k = sh.k;
    const std::vector<float> wf = pseudo_random(n * k, 0.03f, 2);
    cuda::DeviceBuffer w(n * k * 4);
    CKPT_CUDA(cudaMemcpy(w.data(), wf.data(), w.size(), cudaMemcpyHostToDevice));
    cuda::DeviceBuffer h;
    {
      const std::vector<float> xf = pseudo_random(tokens * k, 1.0f, 3);
      std::vector<uint16_t> xb(xf.size());
      for (size_t i = 0; i < xf.size(); ++i) xb[i] = ops::f32_to_bf16(xf[i]);
      cuda::DeviceBuffer db(xb.size() * 2);
      CKPT_CUDA(cudaMemcpy(db.data(), xb.data(), db.size(), cudaMemcpyHostToDevice));
      cuda::DeviceHessian dh(k, nullptr);
      dh.add(db.data(), cuda::DeviceHessian::Input::kBF16, tokens);
      h = dh.matrix();
    }
    const ops::Int4Scheme scheme{ops::Int4Format::kGptq, 128, true, DType::F16, 1};
    cuda::DeviceGptq g(nullptr);
    calib::GptqOutcome outcome;
    std::vector<double> ms;
    for (int rep = 0; rep < 4; ++rep) {
      CKPT_CUDA(cudaDeviceSynchronize());
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_FALSE(g.run(scheme, w.as<float>(), n, k, h.as<float>(), {}, &outcome));
      const auto t1 = std::chrono::steady_clock::now();
      if (rep > 0) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());  // rep 0 warms up
    }
    std::sort(ms.begin(), ms.end());
    const double kd = static_cast<double>(k);
    line("gptq solve g128 act", sh.name, ms[ms.size() / 2], static_cast<double>(n) * kd * kd + kd * kd * kd / 3, peak.fp32);
    std::printf("BENCH   damp %.2f, rtn fallback %d, sweep loss %.4g\n", outcome.damp, outcome.rtn_fallback ? 1 : 0,
                outcome.sweep_loss);
    EXPECT_FALSE(outcome.rtn_fallback) << sh.name;
  }
}
