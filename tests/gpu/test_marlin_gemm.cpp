// The Marlin W4A16 GEMM (kernels/marlin_gemm.cu) against a float64 product of the dequantized
// weights. The Marlin tensors are built by the plain re-implementation of vLLM's test reference
// (tests/reference/vllm_marlin_reference.h: marlin_weights, marlin_permute_scales,
// marlin_zero_points, sort_weights), not by ckpt's own relayout, so a layout misread by the kernel
// and by lib/ops alike would still fail here.
//
// The bound, per output element y = sum_k a_k w_k with w_k = (q_k - z) s:
//   |y_gpu - y| <= u_w * sum_k |a_k w_k| + 2^-20 * sum_k |a_k w_k| + u_out |y| + 2^-24
// u_w: grouped weights are rounded once to the 16-bit type (2^-11 f16, 2^-8 bf16; channelwise
// weights are exact integers and their scale is applied in float32: 0); 2^-20 covers float32
// accumulation of up to 2^3 partial sums of K / 16 mma steps each (K <= 2048 here: the mma adds
// in float32 with at most K terms, relative error below K * 2^-24 = 2^-13 in the worst case, and
// far below it for random signs — the bound is tested, and the worst seen is printed); u_out: the
// final rounding to f16/bf16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "cuda_check.h"
#include "gpu_info.h"
#include "marlin_gemm.h"
#include "ops/float_convert.h"
#include "vllm_marlin_reference.h"

using namespace ckpt;
namespace vllm = ckpt::test::vllm;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine: the Marlin GEMM is not tested here"

template <typename T>
cuda::DeviceBuffer upload(const std::vector<T>& v) {
  cuda::DeviceBuffer b(std::max<size_t>(v.size() * sizeof(T), 16));
  if (!v.empty()) CKPT_CUDA(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}

struct Case {
  int dtype;  // 0 f16, 1 bf16
  int64_t k, n, group;
  bool zeros;
  enum { kNone, kAligned, kRagged } act_order;
  uint64_t m;
};

std::string name(const Case& c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s k=%lld n=%lld g=%lld %s act=%d m=%llu", c.dtype ? "bf16" : "f16",
                static_cast<long long>(c.k), static_cast<long long>(c.n), static_cast<long long>(c.group),
                c.zeros ? "zp" : "sym", static_cast<int>(c.act_order), static_cast<unsigned long long>(c.m));
  return buf;
}

float to_f(int dtype, uint16_t h) { return dtype ? ops::bf16_to_f32(h) : ops::f16_to_f32(h); }
uint16_t from_f(int dtype, float f) { return dtype ? ops::f32_to_bf16(f) : ops::f32_to_f16(f); }

// Runs one case at m rows; returns the worst |err| / bound seen (must be <= 1).
double run_case(const Case& c, uint32_t seed) {
  const int64_t k = c.k, n = c.n;
  const bool channel = c.group == -1 || c.group >= k;
  const int64_t group = channel ? k : c.group, groups = k / group;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(0.002f, 0.02f);

  vllm::Mat q(static_cast<size_t>(k * n)), zp(static_cast<size_t>(groups * n), 8);
  for (auto& v : q) v = rng() & 15u;
  if (c.zeros)
    for (auto& v : zp) v = rng() & 15u;
  std::vector<uint16_t> s(static_cast<size_t>(groups * n));
  for (auto& v : s) v = from_f(c.dtype, uni(rng));
  std::vector<uint16_t> a(c.m * k);
  for (auto& v : a) v = from_f(c.dtype, normal(rng));

  // g_idx: act-order puts row k in group g_idx[k]. Aligned: every group holds `group` rows (as
  // GPTQ writes it, scattered); ragged: groups of random sizes, so sorted k steps span groups.
  std::vector<int64_t> g_idx(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) g_idx[i] = i / group;
  if (c.act_order == Case::kAligned) std::shuffle(g_idx.begin(), g_idx.end(), rng);
  if (c.act_order == Case::kRagged)
    for (auto& g : g_idx) g = static_cast<int64_t>(rng() % groups);

  // The float64 reference on the unsorted weight: y[r][j] = sum_i a[r][i] (q[i][j] - z) s.
  std::vector<double> ref(c.m * n, 0.0), mag(c.m * n, 0.0);
  const double u_w = channel ? 0.0 : (c.dtype ? 0x1p-8 : 0x1p-11), u_out = c.dtype ? 0x1p-8 : 0x1p-11;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t g = g_idx[i];
    for (uint64_t r = 0; r < c.m; ++r) {
      const double ar = to_f(c.dtype, a[r * k + i]);
      if (ar == 0) continue;
      for (int64_t j = 0; j < n; ++j) {
        const double w = static_cast<double>(q[i * n + j] - zp[g * n + j]) * to_f(c.dtype, s[g * n + j]);
        ref[r * n + j] += ar * w;
        mag[r * n + j] += std::fabs(ar * w);
      }
    }
  }

  // Marlin tensors, by vLLM's test reference.
  std::vector<int32_t> sorted_g(static_cast<size_t>(k)), perm(static_cast<size_t>(k));
  vllm::Mat qs = q;
  if (c.act_order != Case::kNone) {
    std::vector<int64_t> g = g_idx;
    const auto order = vllm::sort_weights(qs, g, n);
    for (int64_t i = 0; i < k; ++i) {
      sorted_g[i] = static_cast<int32_t>(g[i]);
      perm[i] = static_cast<int32_t>(order[i]);
    }
  }
  const auto qweight = vllm::marlin_weights(qs, k, n, vllm::get_weight_perm());
  vllm::Mat s64(s.begin(), s.end());
  const vllm::Mat sp = vllm::marlin_permute_scales(s64, k, n, channel ? -1 : group);
  std::vector<uint16_t> s_marlin(sp.begin(), sp.end());
  const auto z_marlin = vllm::marlin_zero_points(zp, groups, n);

  auto d_a = upload(a), d_b = upload(qweight), d_s = upload(s_marlin), d_z = upload(z_marlin), d_g = upload(sorted_g),
       d_p = upload(perm);
  cuda::DeviceBuffer d_c(c.m * n * 2);
  CKPT_CUDA(cudaMemset(d_c.data(), 0xFF, c.m * n * 2));  // NaN: an element never written shows
  cuda::MarlinGemmArgs args;
  args.dtype = c.dtype;
  args.m = c.m;
  args.n = static_cast<uint64_t>(n);
  args.k = static_cast<uint64_t>(k);
  args.group_size = channel ? -1 : group;
  args.a = d_a.data();
  args.b = d_b.as<uint32_t>();
  args.scales = d_s.data();
  args.zeros = c.zeros ? d_z.as<uint32_t>() : nullptr;
  args.g_idx = c.act_order != Case::kNone ? d_g.as<int32_t>() : nullptr;
  args.perm = c.act_order != Case::kNone ? d_p.as<int32_t>() : nullptr;
  args.c = d_c.data();
  args.sm_count = cuda::current_sm_count();
  EXPECT_EQ(cuda::MarlinGemm::can_implement(args), cuda::Int4Status::kSuccess) << name(c);
  cuda::DeviceBuffer ws(std::max<size_t>(cuda::MarlinGemm::get_workspace_size(args), 16));
  cuda::MarlinGemm gemm;
  EXPECT_EQ(gemm.run(args, ws.data(), nullptr), cuda::Int4Status::kSuccess) << name(c);
  CKPT_CUDA(cudaDeviceSynchronize());
  std::vector<uint16_t> out(c.m * n);
  CKPT_CUDA(cudaMemcpy(out.data(), d_c.data(), out.size() * 2, cudaMemcpyDeviceToHost));

  double worst = 0;
  int reported = 0;
  for (size_t e = 0; e < out.size(); ++e) {
    const double got = to_f(c.dtype, out[e]);
    const double bound = (u_w + 0x1p-20) * mag[e] + u_out * std::fabs(ref[e]) + 0x1p-24;
    const double ratio = std::fabs(got - ref[e]) / bound;
    if (!(ratio <= 1.0) && reported++ < 5)
      ADD_FAILURE() << name(c) << " row " << e / n << " col " << e % n << ": got " << got << ", float64 " << ref[e]
                    << ", bound " << bound;
    if (!(ratio <= worst)) worst = std::isnan(ratio) ? INFINITY : ratio;
  }
  return worst;
}

}  // namespace

// vLLM's repack-test shapes (K = 128 {8, 5, 11}, N = {64, 256} x {4, 7, 13}, a subset of N), every
// group size, symmetric and zero points, both 16-bit types, act-order aligned and ragged, and
// row counts around the 16-row tile.
TEST(MarlinGemmGpu, EveryLayoutCaseEqualsTheFloat64Product) {
  SKIP_WITHOUT_GPU();
  uint32_t seed = 1;
  double worst = 0;
  int cases = 0;
  for (int dtype : {0, 1})
    for (int64_t k : {1024, 640, 1408})
      for (int64_t n : {256, 448, 1792})
        for (int64_t group : {-1, 32, 64, 128})
          for (bool zeros : {false, true}) {
            if ((k + n + group) % 3 == 0 && zeros) continue;  // a third of the zero-point cases: time
            Case c{dtype, k, n, group, zeros, Case::kNone, 1};
            for (uint64_t m : {1, 5, 16, 33}) {
              c.m = m;
              worst = std::max(worst, run_case(c, seed++));
              ++cases;
            }
          }
  std::printf("%d cases, worst error / bound %.3f\n", cases, worst);
}

TEST(MarlinGemmGpu, ActOrderGathersAAndFollowsGIdx) {
  SKIP_WITHOUT_GPU();
  uint32_t seed = 1000;
  double worst = 0;
  for (int dtype : {0, 1})
    for (int64_t group : {32, 128})
      for (bool zeros : {false, true})
        for (auto act : {Case::kAligned, Case::kRagged})
          for (uint64_t m : {1, 16, 20}) {
            Case c{dtype, 1408, 448, group, zeros, act, m};
            worst = std::max(worst, run_case(c, seed++));
          }
  std::printf("act-order: worst error / bound %.3f\n", worst);
}

// Batches of 64 and 80 rows, the first with K split across CTAs, the second (N = 8192: 128 strips
// x 5 row tiles fill an H100/H200 four times over) without.
TEST(MarlinGemmGpu, SplitAndUnsplitKAgree) {
  SKIP_WITHOUT_GPU();
  double worst = 0;
  for (auto [n, m] : {std::pair<int64_t, uint64_t>{256, 64}, {8192, 80}}) {
    Case c{1, 2048, n, 128, true, Case::kNone, m};
    cuda::MarlinGemmArgs shape;
    shape.m = m;
    shape.n = static_cast<uint64_t>(n);
    shape.k = 2048;
    shape.sm_count = cuda::current_sm_count();
    const bool split = cuda::MarlinGemm::get_workspace_size(shape) > 0;
    EXPECT_EQ(split, n == 256 || shape.sm_count > 160) << "n=" << n;
    worst = std::max(worst, run_case(c, 77 + static_cast<uint32_t>(n)));
  }
  std::printf("split/unsplit: worst error / bound %.3f\n", worst);
}

TEST(MarlinGemmGpu, RunsTheSameBitsTwice) {
  SKIP_WITHOUT_GPU();
  const uint64_t m = 3, n = 512, k = 4096;
  std::vector<uint16_t> a(m * k);
  std::vector<uint32_t> b(k / 16 * 2 * n);
  std::vector<uint16_t> s(k / 128 * n, ops::f32_to_bf16(0.01f));
  std::mt19937 rng(5);
  for (auto& v : a) v = ops::f32_to_bf16(std::normal_distribution<float>(0, 1)(rng));
  for (auto& v : b) v = rng();
  auto d_a = upload(a), d_b = upload(b), d_s = upload(s);
  cuda::DeviceBuffer c1(m * n * 2), c2(m * n * 2);
  cuda::MarlinGemmArgs args;
  args.dtype = 1;
  args.m = m;
  args.n = n;
  args.k = k;
  args.group_size = 128;
  args.a = d_a.data();
  args.b = d_b.as<uint32_t>();
  args.scales = d_s.data();
  args.sm_count = cuda::current_sm_count();
  cuda::DeviceBuffer ws(std::max<size_t>(cuda::MarlinGemm::get_workspace_size(args), 16));
  ASSERT_GT(cuda::MarlinGemm::get_workspace_size(args), 0u) << "this shape is meant to split K";
  cuda::MarlinGemm gemm;
  args.c = c1.data();
  ASSERT_EQ(gemm.run(args, ws.data(), nullptr), cuda::Int4Status::kSuccess);
  args.c = c2.data();
  ASSERT_EQ(gemm.run(args, ws.data(), nullptr), cuda::Int4Status::kSuccess);
  std::vector<uint16_t> h1(m * n), h2(m * n);
  CKPT_CUDA(cudaMemcpy(h1.data(), c1.data(), m * n * 2, cudaMemcpyDeviceToHost));
  CKPT_CUDA(cudaMemcpy(h2.data(), c2.data(), m * n * 2, cudaMemcpyDeviceToHost));
  EXPECT_EQ(h1, h2);
}

TEST(MarlinGemmGpu, RefusesWhatItCannotTake) {
  SKIP_WITHOUT_GPU();
  cuda::DeviceBuffer buf(1 << 16);
  cuda::MarlinGemmArgs ok;
  ok.m = 1;
  ok.n = 128;
  ok.k = 256;
  ok.group_size = 128;
  ok.a = ok.scales = ok.c = buf.data();
  ok.b = buf.as<uint32_t>();
  EXPECT_EQ(cuda::MarlinGemm::can_implement(ok), cuda::Int4Status::kSuccess);
  auto bad = [&](auto edit) {
    cuda::MarlinGemmArgs a = ok;
    edit(a);
    return cuda::MarlinGemm::can_implement(a);
  };
  EXPECT_EQ(bad([](auto& a) { a.n = 96; }), cuda::Int4Status::kInvalidProblem);          // N % 64
  EXPECT_EQ(bad([](auto& a) { a.k = 264; }), cuda::Int4Status::kInvalidProblem);         // K % 16
  EXPECT_EQ(bad([](auto& a) { a.group_size = 24; }), cuda::Int4Status::kInvalidProblem); // group % 16
  EXPECT_EQ(bad([](auto& a) { a.k = 272; }), cuda::Int4Status::kInvalidProblem);         // K % group (272 = 2 x 128 + 16)
  EXPECT_EQ(bad([](auto& a) { a.dtype = 2; }), cuda::Int4Status::kInvalidProblem);
  EXPECT_EQ(bad([&](auto& a) { a.g_idx = buf.as<int32_t>(); }), cuda::Int4Status::kInvalidProblem);  // no perm
  EXPECT_EQ(bad([&](auto& a) {
              a.g_idx = a.perm = buf.as<int32_t>();
              a.group_size = -1;
            }),
            cuda::Int4Status::kInvalidProblem);  // act-order without groups
  EXPECT_EQ(bad([&](auto& a) { a.a = buf.as<uint8_t>() + 2; }), cuda::Int4Status::kInvalidProblem);  // alignment
}
