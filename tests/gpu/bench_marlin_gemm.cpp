// The Marlin W4A16 GEMM beside cuBLAS bf16 on the same problem, in one run (issue 14): the
// Llama-3-8B and 70B Linear shapes (K x N: 4096 x 4096, 4096 x 14336, 14336 x 4096, 8192 x 8192,
// 8192 x 28672) at M = 1, 4, 16, 64, bf16 activations, group 128, symmetric. One "BENCH" line per
// problem: median of 20 timed runs after 3 warm-ups of each, the speedup over cuBLAS, and the
// kernel's bytes (packed weight + scales + A + C) per second against the HBM read bandwidth
// measured in the same run (goals at M = 1: >= 3x cuBLAS, >= 80% of HBM). Under ctest it skips;
// tests/bench/gpu_marlin_gemm.sh runs it with CKPT_BENCH=1.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cuda_check.h"
#include "gpu_info.h"
#include "gpu_timing.h"
#include "marlin_gemm.h"
#include "ops/float_convert.h"

using namespace ckpt;

TEST(MarlinGemmBench, AgainstCublasBf16AndHbm) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  if (!std::getenv("CKPT_BENCH")) GTEST_SKIP() << "benchmark: set CKPT_BENCH=1 (tests/bench/gpu_marlin_gemm.sh)";
  double hbm = 0;
  CKPT_CUDA(cuda::measure_read_gbps(uint64_t{2} << 30, 9, &hbm));
  std::printf("BENCH device %s, HBM read %.0f GB/s\n", cuda::device_description(0).c_str(), hbm);

  const uint64_t max_k = 14336, max_n = 28672, max_m = 64;
  cuda::DeviceBuffer w16(2 * 8192 * max_n), q(8192 * max_n / 2), s(2 * (max_k / 128) * max_n), a(2 * max_m * max_k),
      c(2 * max_m * max_n), ws(4 * 64 * max_m * max_n);
  {  // Random codes and activations; scales of a typical magnitude.
    std::mt19937 rng(3);
    std::vector<uint32_t> words(1 << 20);
    for (auto& v : words) v = rng();
    for (uint64_t off = 0; off < q.size() / 4; off += words.size())
      CKPT_CUDA(cudaMemcpy(q.as<uint32_t>() + off, words.data(), 4 * std::min<uint64_t>(words.size(), q.size() / 4 - off),
                           cudaMemcpyHostToDevice));
    std::vector<uint16_t> h(max_m * max_k);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& v : h) v = ops::f32_to_bf16(normal(rng));
    CKPT_CUDA(cudaMemcpy(a.data(), h.data(), 2 * h.size(), cudaMemcpyHostToDevice));
    std::vector<uint16_t> sc((max_k / 128) * max_n, ops::f32_to_bf16(0.01f));
    CKPT_CUDA(cudaMemcpy(s.data(), sc.data(), 2 * sc.size(), cudaMemcpyHostToDevice));
    CKPT_CUDA(cudaMemset(w16.data(), 0x3c, w16.size()));
  }
  cuda::BlasHandle blas;
  CKPT_CUBLAS(cublasCreate(blas.out()));
  const int sms = cuda::current_sm_count();

  struct Shape {
    uint64_t k, n;
  };
  for (Shape sh : {Shape{4096, 4096}, Shape{4096, 14336}, Shape{14336, 4096}, Shape{8192, 8192}, Shape{8192, 28672}}) {
    for (uint64_t m : {1, 4, 16, 64}) {
      cuda::MarlinGemmArgs args;
      args.dtype = 1;
      args.m = m;
      args.n = sh.n;
      args.k = sh.k;
      args.group_size = 128;
      args.a = a.data();
      args.b = q.as<uint32_t>();
      args.scales = s.data();
      args.c = c.data();
      args.sm_count = sms;
      ASSERT_LE(cuda::MarlinGemm::get_workspace_size(args), ws.size());
      cuda::MarlinGemm gemm;
      const float marlin_ms = test::median_event_ms(
          [&] { ASSERT_EQ(gemm.run(args, ws.data(), nullptr), cuda::Int4Status::kSuccess); }, 20, 3);
      const float alpha = 1.0f, beta = 0.0f;
      // Row-major C[m][n] = A[m][k] W[k][n] is column-major C^T = W^T A^T.
      const float cublas_ms = test::median_event_ms(
          [&] {
            CKPT_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(sh.n), static_cast<int>(m),
                                     static_cast<int>(sh.k), &alpha, w16.data(), CUDA_R_16BF, static_cast<int>(sh.n),
                                     a.data(), CUDA_R_16BF, static_cast<int>(sh.k), &beta, c.data(), CUDA_R_16BF,
                                     static_cast<int>(sh.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
          },
          20, 3);
      const double bytes = sh.k * sh.n / 2.0 + 2.0 * (sh.k / 128) * sh.n + 2.0 * m * (sh.k + sh.n);
      const double gbps = bytes / marlin_ms / 1e6;
      std::printf("BENCH marlin_gemm k=%5llu n=%5llu m=%2llu  marlin %7.4f ms  cublas_bf16 %7.4f ms  speedup %5.2fx  "
                  "%5.0f GB/s = %4.2f of HBM read\n",
                  static_cast<unsigned long long>(sh.k), static_cast<unsigned long long>(sh.n),
                  static_cast<unsigned long long>(m), marlin_ms, cublas_ms, cublas_ms / marlin_ms, gbps, gbps / hbm);
    }
  }
}
