// The CUDA Marlin relayout (kernels/marlin_repack.cu) against the plain re-implementation of vLLM's
// test reference (tests/reference/vllm_marlin_reference.h), bit for bit, over the shapes of vLLM's
// own repack tests: GPTQ, AWQ and compressed-tensors sources, act-order with ties (GPTQ and
// compressed-tensors), ranges of K-tiles, scales for every group size (both directions), zero
// points from every format, and the GPTQ v1 zero that Marlin cannot hold. Skips without a GPU.
#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "cuda_check.h"
#include "gpu_info.h"
#include "marlin_repack.h"
#include "ops/marlin_layout.h"
#include "vllm_marlin_reference.h"

using namespace ckpt;
namespace vllm = ckpt::test::vllm;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA Marlin relayout is not tested here"

template <typename T>
cuda::DeviceBuffer upload(const std::vector<T>& v) {
  cuda::DeviceBuffer b(v.size() * sizeof(T));
  CKPT_CUDA(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}

template <typename T>
std::vector<T> download(const cuda::DeviceBuffer& b, size_t count) {
  std::vector<T> v(count);
  CKPT_CUDA(cudaMemcpy(v.data(), b.data(), count * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

std::vector<uint32_t> gpu_repack(int source, const std::vector<uint32_t>& src, const std::vector<int32_t>* perm,
                                 uint64_t n, uint64_t k, uint64_t kt0, uint64_t kt1, uint32_t max_ctas = 0) {
  auto d_src = upload(src);
  cuda::DeviceBuffer d_perm(perm ? perm->size() * 4 : 4), out((kt1 - kt0) * 2 * n * 4);
  if (perm) CKPT_CUDA(cudaMemcpy(d_perm.data(), perm->data(), perm->size() * 4, cudaMemcpyHostToDevice));
  CKPT_CUDA(cudaMemset(out.data(), 0xA5, out.size()));
  cuda::MarlinRepackArgs a;
  a.source = source;
  a.n = n;
  a.k = k;
  a.kt0 = kt0;
  a.kt1 = kt1;
  a.src = d_src.as<uint32_t>();
  a.perm = perm ? d_perm.as<int32_t>() : nullptr;
  a.out = out.as<uint32_t>();
  a.max_ctas = max_ctas;
  cuda::MarlinRepackKernel kernel;
  EXPECT_EQ(kernel.run(a, nullptr), cuda::Int4Status::kSuccess);
  CKPT_CUDA(cudaDeviceSynchronize());
  return download<uint32_t>(out, (kt1 - kt0) * 2 * n);
}

std::vector<uint32_t> transpose(const std::vector<uint32_t>& a, int64_t rows, int64_t cols) {
  std::vector<uint32_t> t(a.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = a[r * cols + c];
  return t;
}

}  // namespace

TEST(MarlinRepackGpu, EverySourceEqualsVllmReference) {
  SKIP_WITHOUT_GPU();
  const auto perm = vllm::get_weight_perm();
  uint32_t seed = 1;
  for (int64_t kc : {8, 5, 11})
    for (int64_t nb : {64, 256})
      for (int64_t nc : {4, 7, 13}) {
        const int64_t k = 128 * kc, n = nb * nc;
        const uint64_t K = k, N = n;
        std::mt19937 rng(seed++);
        vllm::Mat q(static_cast<size_t>(k * n));
        for (auto& v : q) v = rng() & 15u;
        const auto want = vllm::marlin_weights(q, k, n, perm);
        const auto gptq = vllm::gptq_pack(q, k, n);
        EXPECT_EQ(gpu_repack(0, gptq, nullptr, N, K, 0, K / 16), want) << "gptq " << k << "x" << n;
        EXPECT_EQ(gpu_repack(1, vllm::awq_pack(q, k, n), nullptr, N, K, 0, K / 16), want) << "awq";
        const auto ct = transpose(gptq, k / 8, n);
        EXPECT_EQ(gpu_repack(2, ct, nullptr, N, K, 0, K / 16), want) << "ct";
        // One or three CTAs: each walks the persistent loop over many blocks.
        for (uint32_t ctas : {1u, 3u}) {
          EXPECT_EQ(gpu_repack(0, gptq, nullptr, N, K, 0, K / 16, ctas), want) << "gptq, CTAs " << ctas;
          EXPECT_EQ(gpu_repack(1, vllm::awq_pack(q, k, n), nullptr, N, K, 0, K / 16, ctas), want) << "awq, CTAs " << ctas;
          EXPECT_EQ(gpu_repack(2, ct, nullptr, N, K, 0, K / 16, ctas), want) << "ct, CTAs " << ctas;
        }
        // A range of K-tiles.
        const uint64_t kt0 = 3, kt1 = K / 16 - 2;
        const std::vector<uint32_t> slice(want.begin() + static_cast<int64_t>(kt0 * 2 * N), want.begin() + static_cast<int64_t>(kt1 * 2 * N));
        EXPECT_EQ(gpu_repack(0, gptq, nullptr, N, K, kt0, kt1), slice) << "gptq rows";
        EXPECT_EQ(gpu_repack(1, vllm::awq_pack(q, k, n), nullptr, N, K, kt0, kt1), slice) << "awq rows";
        // compressed-tensors from an odd K-tile (word loads) and from an even one (16-byte loads)
        // with a last block of one K-tile (a chunk of two K-tiles half past the end).
        EXPECT_EQ(gpu_repack(2, ct, nullptr, N, K, kt0, kt1, 2), slice) << "ct rows";
        const uint64_t ke0 = 2, ke1 = K / 16 - 1;
        const std::vector<uint32_t> even(want.begin() + static_cast<int64_t>(ke0 * 2 * N), want.begin() + static_cast<int64_t>(ke1 * 2 * N));
        EXPECT_EQ(gpu_repack(2, ct, nullptr, N, K, ke0, ke1), even) << "ct rows from an even K-tile";
        EXPECT_EQ(gpu_repack(0, gptq, nullptr, N, K, ke0, ke1, 2), even) << "gptq rows from an even K-tile";
        // Act-order: rows of the checkpoint in a random order, g_idx with runs of ties.
        const int64_t group = 32 << (seed % 3);
        std::vector<int64_t> rp(static_cast<size_t>(k));
        std::iota(rp.begin(), rp.end(), 0);
        std::shuffle(rp.begin(), rp.end(), rng);
        std::vector<int64_t> g_idx(K);
        for (uint64_t i = 0; i < K; ++i) g_idx[i] = rp[i] / group;
        auto q_sorted = q;
        auto g_sorted = g_idx;
        const auto sort_idx = vllm::sort_weights(q_sorted, g_sorted, n);
        const auto want_ao = vllm::marlin_weights(q_sorted, k, n, perm);
        std::vector<int32_t> g32(g_idx.begin(), g_idx.end()), sorted(K), p(K);
        ASSERT_TRUE(ops::marlin_sort_g_idx(g32.data(), K, K / group, sorted.data(), p.data()));
        for (uint64_t i = 0; i < K; ++i) ASSERT_EQ(p[i], sort_idx[i]);
        EXPECT_EQ(gpu_repack(0, gptq, &p, N, K, 0, K / 16), want_ao) << "gptq act-order";
        EXPECT_EQ(gpu_repack(2, ct, &p, N, K, 0, K / 16), want_ao) << "ct act-order";
      }
}

TEST(MarlinRepackGpu, ScalesAndZeroPointsEqualVllmReference) {
  SKIP_WITHOUT_GPU();
  cuda::MarlinRepackKernel kernel;
  for (int64_t n : {256, 448, 832})
    for (int64_t k : {640, 1024})
      for (int64_t group : {int64_t{-1}, int64_t{32}, int64_t{64}, int64_t{128}, k}) {
        const int64_t G = group == -1 ? 1 : k / group;
        std::mt19937 rng(static_cast<uint32_t>(n + k + group));
        vllm::Mat s(static_cast<size_t>(G * n));
        for (auto& v : s) v = rng() & 0xFFFF;
        const auto want = vllm::marlin_permute_scales(s, k, n, group);
        const std::vector<uint16_t> in(s.begin(), s.end());
        auto d_in = upload(in);
        cuda::DeviceBuffer out(in.size() * 2), back(in.size() * 2);
        cuda::MarlinScalesArgs a;
        a.in = d_in.data();
        a.out = out.data();
        a.rows = static_cast<uint64_t>(G);
        a.n = static_cast<uint64_t>(n);
        a.k = static_cast<uint64_t>(k);
        a.group_size = group;
        ASSERT_EQ(kernel.run(a, nullptr), cuda::Int4Status::kSuccess);
        a.in = out.data();
        a.out = back.data();
        a.inverse = true;
        ASSERT_EQ(kernel.run(a, nullptr), cuda::Int4Status::kSuccess);
        const auto got = download<uint16_t>(out, in.size());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "scales g" << group << " at " << i;
        EXPECT_EQ(download<uint16_t>(back, in.size()), in);
        // Zero points from each format's packing of the same zeros.
        vllm::Mat z(static_cast<size_t>(G * n));
        for (auto& v : z) v = 1 + rng() % 15;  // GPTQ v1 cannot store 0 (checked below)
        const bool v1_zero = group == 32;     // then one zero of 0: GPTQ must be flagged
        if (v1_zero) z[5] = 0;
        const auto want_z = vllm::marlin_zero_points(z, G, n);
        const auto awq = vllm::awq_pack(z, G, n);
        std::vector<uint32_t> gptq(awq.size(), 0), ct(static_cast<size_t>(n / 8 * G), 0);
        for (int64_t g = 0; g < G; ++g)
          for (int64_t c = 0; c < n; ++c) {
            gptq[g * (n / 8) + c / 8] |= static_cast<uint32_t>((z[g * n + c] - 1) & 15) << (4 * (c % 8));  // v1
            ct[(c / 8) * G + g] |= static_cast<uint32_t>(z[g * n + c]) << (4 * (c % 8));
          }
        for (auto [source, zeros] : {std::pair<int, const std::vector<uint32_t>*>{0, &gptq}, {1, &awq}, {2, &ct}}) {
          auto d_z = upload(*zeros);
          cuda::DeviceBuffer d_out(want_z.size() * 4), bad(4);
          CKPT_CUDA(cudaMemset(bad.data(), 0, 4));
          cuda::MarlinZerosArgs za;
          za.source = source;
          za.zero_offset = 1;
          za.groups = static_cast<uint64_t>(G);
          za.n = static_cast<uint64_t>(n);
          za.zeros = d_z.as<uint32_t>();
          za.out = d_out.as<uint32_t>();
          za.bad = bad.as<int>();
          ASSERT_EQ(kernel.run(za, nullptr), cuda::Int4Status::kSuccess);
          const int flagged = download<int>(bad, 1)[0];
          // GPTQ v1: a zero of 0 was stored as 0xF and reads back as 16.
          if (source == 0 && v1_zero) {
            EXPECT_EQ(flagged, 1);
            continue;
          }
          EXPECT_EQ(flagged, 0);
          EXPECT_EQ(download<uint32_t>(d_out, want_z.size()), want_z) << "zero points from source " << source;
        }
      }
}
