#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "gpu_info.h"

namespace ckpt::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void require_device() {
  if (device_count() == 0)
    fail(Errc::kUnsupported, "", "", "--device cuda: no usable CUDA GPU on this machine (use --device cpu)");
}

std::string device_description(int index) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, index) != cudaSuccess) return "unknown device";
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", static_cast<double>(p.totalGlobalMem) / (1u << 30));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " + memory + ")";
}

int current_sm_count() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return sms;
}

namespace {

// Every 16-byte word read once; the XOR of all words decides a store that never happens in
// practice but keeps the compiler from dropping the loads.
__global__ void read_kernel(const uint4* p, uint64_t n, unsigned* sink) {
  uint32_t acc = 0;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldg(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) atomicAdd(sink, 1u);
}

}  // namespace

cudaError_t measure_read_gbps(uint64_t bytes, int reps, double* gbps) {
  int dev = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) return e;
  bytes = bytes / 16 * 16;
  void* buf = nullptr;
  unsigned* sink = nullptr;
  cudaStream_t s = nullptr;
  cudaEvent_t a = nullptr, b = nullptr;
  std::vector<float> ms;
  // One exit path that frees whatever was made (this file is C-style CUDA: no RAII handles).
  auto run = [&]() -> cudaError_t {
    if (cudaError_t r = cudaMalloc(&buf, bytes); r != cudaSuccess) return r;
    if (cudaError_t r = cudaMalloc(&sink, sizeof(unsigned)); r != cudaSuccess) return r;
    if (cudaError_t r = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); r != cudaSuccess) return r;
    if (cudaError_t r = cudaEventCreate(&a); r != cudaSuccess) return r;
    if (cudaError_t r = cudaEventCreate(&b); r != cudaSuccess) return r;
    if (cudaError_t r = cudaMemsetAsync(buf, 1, bytes, s); r != cudaSuccess) return r;
    for (int i = 0; i <= reps; ++i) {
      if (cudaError_t r = cudaEventRecord(a, s); r != cudaSuccess) return r;
      read_kernel<<<static_cast<unsigned>(sms) * 8, 512, 0, s>>>(static_cast<const uint4*>(buf), bytes / 16, sink);
      if (cudaError_t r = cudaGetLastError(); r != cudaSuccess) return r;
      if (cudaError_t r = cudaEventRecord(b, s); r != cudaSuccess) return r;
      if (cudaError_t r = cudaEventSynchronize(b); r != cudaSuccess) return r;
      float t = 0;
      if (cudaError_t r = cudaEventElapsedTime(&t, a, b); r != cudaSuccess) return r;
      if (i > 0) ms.push_back(t);  // run 0 is the warm-up
    }
    return cudaSuccess;
  };
  e = run();
  if (b) cudaEventDestroy(b);
  if (a) cudaEventDestroy(a);
  if (s) cudaStreamDestroy(s);
  if (sink) cudaFree(sink);
  if (buf) cudaFree(buf);
  if (e != cudaSuccess || ms.empty()) return e != cudaSuccess ? e : cudaErrorInvalidValue;
  std::sort(ms.begin(), ms.end());
  *gbps = static_cast<double>(bytes) / (ms[ms.size() / 2] * 1e-3) / 1e9;
  return cudaSuccess;
}

}  // namespace ckpt::cuda
