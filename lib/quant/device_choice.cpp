#include "quant/device_choice.h"

#include <algorithm>
#include <cstdio>

namespace ckpt::quant {

DeviceRates device_rates(Method method) {
  DeviceRates r;
  // Per core, from memory, AVX-512 (BENCHMARKS "INT4 and Marlin CPU ops, single core" and
  // "quantize --fp8"): INT4 RTN g128 with the error report ~0.63 ns per BF16 element plus the GPTQ
  // transpose 0.09 -> 2 B / 0.72 ns ~ 2.8 GB/s of source; FP8 amax pass + quantize with error
  // terms ~0.35 ns per element -> ~5.7 GB/s.
  r.cpu_bytes_per_s_per_thread = method == Method::kInt4 ? 2.8e9 : 5.7e9;
  // Pinned host -> device copies: ~46 GB/s measured by validate's load on the H100 box with
  // several streams (BENCHMARKS "validate"); the quantize pipeline's per-thread streams of 4 MiB
  // jobs are taken at under half of that, 20 GB/s, so the GPU must win clearly to be chosen.
  r.copy_bytes_per_s = 20e9;
  // CUDA context creation and the staging buffers' pinned allocations: ~0.25 s on the H100 box.
  r.start_s = 0.25;
  return r;
}

namespace {

std::string fmt(const char* f, double a, double b = 0, double c = 0, double d = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

}  // namespace

DeviceChoice choose_device(const DeviceInputs& in) {
  if (in.calibrated) return {false, "cpu: calibrated quantization (--method gptq/awq) runs on the CPU"};
  if (in.method != Method::kFp8 && in.method != Method::kInt4) return {false, "cpu: nothing to quantize on a GPU"};
  const DeviceRates r = device_rates(in.method);
  const double gb = static_cast<double>(in.bytes) / 1e9;
  const unsigned threads = std::max(1u, in.threads);
  const double t_cpu = static_cast<double>(in.bytes) / (threads * r.cpu_bytes_per_s_per_thread);
  const double t_gpu = r.start_s + static_cast<double>(in.bytes) / r.copy_bytes_per_s;
  const std::string est = fmt("%.2f GB of weights: estimated %.2f s of CPU math on %.0f threads, %.2f s on the GPU",
                              gb, t_cpu, threads, t_gpu) +
                          fmt(" (%.2f s start-up + copies at %.0f GB/s)", r.start_s, r.copy_bytes_per_s / 1e9);
  if (t_gpu >= t_cpu) return {false, "cpu: " + est};
  if (!in.gpu_usable || !in.gpu_usable()) return {false, "cpu: no usable CUDA GPU (" + est + ")"};
  return {true, "cuda: " + est};
}

}  // namespace ckpt::quant
