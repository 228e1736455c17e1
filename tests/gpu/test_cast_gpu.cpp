// The CUDA cast kernel against the CPU reference, exhaustively for 16-bit sources (all 65,536
// patterns), on every f32 rounding edge plus 10^7 random f32 patterns, and on f64 edges plus random
// patterns; aligned (vector path) and misaligned (element path) buffers; the --device cuda
// ElementOp; and the kernel's throughput against a device-to-device copy of the same traffic.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gpu_timing.h"
#include "cast.h"
#include "cast_op_cuda.h"
#include "cast_patterns.h"
#include "gpu_info.h"
#include "ops/cast.h"

namespace {

using namespace ckpt;
using namespace ckpt::test;

#define SKIP_WITHOUT_GPU() \
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA cast tests need one"

#define CHECK_CUDA(x) ASSERT_EQ((x), cudaSuccess) << #x

size_t esize(DType t) { return dtype_bits(t) / 8; }

ops::FloatFormat format_of(DType t) {
  ops::FloatFormat f{};
  EXPECT_TRUE(ops::float_format_of(t, &f));
  return f;
}

// Runs the kernel on `in` placed `shift` elements past a 256-byte aligned device address (0: the
// vector path, 1: the element path) and compares with the reference byte for byte.
void expect_kernel_matches_reference(DType from, DType to, const std::vector<uint8_t>& in, size_t shift) {
  const size_t n = in.size() / esize(from);
  std::vector<uint8_t> want(n * esize(to)), got(n * esize(to));
  ops::cast_reference(from, to, in.data(), want.data(), n);
  uint8_t *d_in = nullptr, *d_out = nullptr;
  CHECK_CUDA(cudaMalloc(&d_in, in.size() + 64));
  CHECK_CUDA(cudaMalloc(&d_out, got.size() + 64));
  CHECK_CUDA(cudaMemcpy(d_in + shift * esize(from), in.data(), in.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cuda::launch_cast(format_of(from), format_of(to), d_in + shift * esize(from), d_out + shift * esize(to),
                               n, nullptr));
  CHECK_CUDA(cudaMemcpy(got.data(), d_out + shift * esize(to), got.size(), cudaMemcpyDeviceToHost));
  cudaFree(d_in);
  cudaFree(d_out);
  size_t bad = 0;
  for (size_t k = 0; k < n; ++k) {
    if (std::memcmp(want.data() + k * esize(to), got.data() + k * esize(to), esize(to)) == 0) continue;
    if (bad++ < 5) {
      uint64_t x = 0, w = 0, g = 0;
      std::memcpy(&x, in.data() + k * esize(from), esize(from));
      std::memcpy(&w, want.data() + k * esize(to), esize(to));
      std::memcpy(&g, got.data() + k * esize(to), esize(to));
      ADD_FAILURE() << dtype_name(from) << "->" << dtype_name(to) << " shift " << shift << " input 0x" << std::hex << x
                    << ": cuda 0x" << g << ", reference 0x" << w;
    }
  }
  EXPECT_EQ(bad, 0u) << dtype_name(from) << "->" << dtype_name(to) << " shift " << shift;
}

const DType kTargets[] = {DType::F32, DType::F16, DType::BF16};

TEST(CastGpu, All16BitPatterns) {
  SKIP_WITHOUT_GPU();
  const auto in = all_16bit_patterns();
  for (DType from : {DType::F16, DType::BF16})
    for (DType to : kTargets)
      for (size_t shift : {0, 1}) expect_kernel_matches_reference(from, to, in, shift);
}

TEST(CastGpu, F32EdgesAndTenMillionRandom) {
  SKIP_WITHOUT_GPU();
  auto v = special_f32_patterns();
  const auto r = random_f32_patterns(10'000'003);
  v.insert(v.end(), r.begin(), r.end());
  const auto in = as_bytes(v);
  for (DType to : kTargets)
    for (size_t shift : {0, 1}) expect_kernel_matches_reference(DType::F32, to, in, shift);
}

TEST(CastGpu, F64EdgesAndRandom) {
  SKIP_WITHOUT_GPU();
  const auto in = as_bytes(f64_test_patterns());
  for (DType to : kTargets)
    for (size_t shift : {0, 1}) expect_kernel_matches_reference(DType::F64, to, in, shift);
}

// The ElementOp behind `ckpt cast --device cuda`, on host buffers as the executor passes them.
TEST(CastGpu, DeviceCudaElementOp) {
  SKIP_WITHOUT_GPU();
  const auto in = all_16bit_patterns();
  const uint64_t n = in.size() / 2;
  for (DType to : {DType::F16, DType::F32}) {
    auto op = cuda::make_cast_op(DType::BF16, to);
    std::vector<uint8_t> want(n * esize(to)), got(n * esize(to));
    ops::cast_reference(DType::BF16, to, in.data(), want.data(), n);
    op->apply(in.data(), got.data(), n);
    EXPECT_TRUE(got == want) << op->name();
  }
}

// Median milliseconds of `reps` runs of fn on the default stream.
template <class Fn>
float median_ms(Fn fn, int reps) {
  return ckpt::test::median_event_ms(fn, reps, 0);
}

// Casting moves in + out bytes; the floor is cudaMemcpy D2D of (in + out) / 2 bytes, which moves
// the same traffic (for bf16 -> f16 that is a copy of the same bytes). Target: >= 70% of it.
TEST(CastGpu, ThroughputVsDeviceCopy) {
  SKIP_WITHOUT_GPU();
  const uint64_t n = 512ull << 20;  // 512 Mi elements: 1 GiB of bf16
  struct Pair {
    DType from, to;
  };
  for (Pair p : {Pair{DType::BF16, DType::F16}, Pair{DType::F32, DType::BF16}, Pair{DType::F16, DType::F32}}) {
    const uint64_t in_bytes = n * esize(p.from), out_bytes = n * esize(p.to), copy_bytes = (in_bytes + out_bytes) / 2;
    uint8_t *d_in = nullptr, *d_out = nullptr, *c_in = nullptr, *c_out = nullptr;
    CHECK_CUDA(cudaMalloc(&d_in, in_bytes));
    CHECK_CUDA(cudaMalloc(&d_out, out_bytes));
    CHECK_CUDA(cudaMalloc(&c_in, copy_bytes));
    CHECK_CUDA(cudaMalloc(&c_out, copy_bytes));
    CHECK_CUDA(cudaMemset(d_in, 0x3C, in_bytes));
    CHECK_CUDA(cudaMemset(c_in, 0x3C, copy_bytes));
    auto cast = [&] { cuda::launch_cast(format_of(p.from), format_of(p.to), d_in, d_out, n, nullptr); };
    auto copy = [&] { cudaMemcpyAsync(c_out, c_in, copy_bytes, cudaMemcpyDeviceToDevice, nullptr); };
    cast();
    copy();
    CHECK_CUDA(cudaDeviceSynchronize());
    float cast_ms = 0, copy_ms = 0;
    for (int round = 0; round < 3; ++round) {  // alternate, keep the last medians
      cast_ms = median_ms(cast, 9);
      copy_ms = median_ms(copy, 9);
    }
    CHECK_CUDA(cudaGetLastError());
    const double fraction = copy_ms / cast_ms;
    std::printf("CAST_GPU_THROUGHPUT %s->%s elements=%llu cast_ms=%.3f (%.0f GB/s moved) d2d_copy_ms=%.3f of %llu B "
                "(%.0f GB/s) fraction=%.3f device=\"%s\"\n",
                std::string(dtype_name(p.from)).c_str(), std::string(dtype_name(p.to)).c_str(),
                static_cast<unsigned long long>(n), cast_ms, (in_bytes + out_bytes) / cast_ms / 1e6, copy_ms,
                static_cast<unsigned long long>(copy_bytes), 2.0 * copy_bytes / copy_ms / 1e6, fraction,
                cuda::device_description(0).c_str());
    EXPECT_GE(fraction, 0.70) << dtype_name(p.from) << "->" << dtype_name(p.to);
    cudaFree(d_in);
    cudaFree(d_out);
    cudaFree(c_in);
    cudaFree(c_out);
  }
}

}  // namespace
