// The Marlin relayout (lib/ops/marlin_layout.h) against an independent plain re-implementation of
// vLLM's own test reference (tests/reference/vllm_marlin_reference.h), over the shapes of vLLM's
// test_gptq_marlin_repack / test_awq_marlin_repack (K = 128·{8,5,11}, N = {64,256}·{4,7,13}):
// weights from GPTQ (± act-order with heavy ties), AWQ and compressed-tensors sources, through
// the closed form, the scalar word path and the AVX-512 path; K-tile row ranges; scales for every
// group size; zero points; and every inverse back to the source bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>

#include "ops/int4_quant.h"
#include "ops/marlin_layout.h"
#include "ops/marlin_layout_detail.h"
#include "vllm_marlin_reference.h"

using namespace ckpt::ops;
namespace vllm = ckpt::test::vllm;

namespace {

struct Shape {
  int64_t k, n;
};

std::vector<Shape> vllm_shapes() {
  std::vector<Shape> s;
  for (int64_t kc : {8, 5, 11})
    for (int64_t nb : {64, 256})
      for (int64_t nc : {4, 7, 13}) s.push_back({128 * kc, nb * nc});
  return s;
}

vllm::Mat random_codes(int64_t k, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  vllm::Mat q(static_cast<size_t>(k * n));
  for (auto& v : q) v = rng() & 15u;
  return q;
}

std::vector<uint32_t> transpose(const std::vector<uint32_t>& a, int64_t rows, int64_t cols) {
  std::vector<uint32_t> t(a.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = a[r * cols + c];
  return t;
}

// vLLM's permute_rows: g_idx[i] = i // group, then a random permutation of the rows.
std::vector<int64_t> act_order_perm(int64_t k, uint32_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(k));
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), std::mt19937(seed));
  return p;
}

void expect_words_eq(const std::vector<uint32_t>& got, const std::vector<uint32_t>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) FAIL() << what << ": first difference at word " << i << ": " << std::hex << got[i] << " != " << want[i];
}

// Every way ours computes B rows [0, K/16) from GPTQ-layout words, compared with `want`.
void expect_all_paths(const std::vector<uint32_t>& q, int64_t k, int64_t n, const std::vector<uint32_t>& want,
                      const std::string& what) {
  std::vector<uint32_t> out(static_cast<size_t>(k / 16 * 2 * n));
  marlin_repack_reference(MarlinSource::kGptq, q.data(), n, n, k, 0, k / 16, out.data());
  expect_words_eq(out, want, what + " closed form");
  detail::marlin_repack_gptq_rows_scalar(q.data(), n, n, k / 16, out.data());
  expect_words_eq(out, want, what + " scalar words");
  if (detail::marlin_avx512_on_this_cpu()) {
    detail::marlin_repack_gptq_rows_avx512(q.data(), n, n, k / 16, out.data());
    expect_words_eq(out, want, what + " avx512");
  }
  marlin_repack(MarlinSource::kGptq, q.data(), n, n, k, 0, k / 16, out.data());
  expect_words_eq(out, want, what + " dispatch");
}

// The kernels marlin_repack / marlin_unpack choose among for an AWQ or compressed-tensors source
// (`src`, rows `stride` words apart), each way, against `want` (B) and `src`: the pass through
// GPTQ-layout rows with the scalar and the AVX-512 rows kernels, and the source's own AVX-512
// kernel (compressed-tensors: repack only; its unpack goes through GPTQ rows).
void expect_paths_through_gptq(MarlinSource source, const std::vector<uint32_t>& src, uint64_t stride, uint64_t n,
                               uint64_t k, const std::vector<uint32_t>& want, const std::string& what) {
  std::vector<uint32_t> out(want.size()), back(src.size());
  const bool vec = detail::marlin_avx512_on_this_cpu();
  for (bool v : {false, true}) {
    if (v && !vec) continue;
    const std::string how = v ? " through gptq avx512" : " through gptq scalar";
    std::fill(out.begin(), out.end(), 0xDEADBEEFu);
    detail::marlin_repack_through_gptq(source, src.data(), stride, n, k / 16, out.data(), v);
    expect_words_eq(out, want, what + how);
    std::fill(back.begin(), back.end(), 0xDEADBEEFu);
    detail::marlin_unpack_through_gptq(source, want.data(), 2 * n, n, k / 16, back.data(), stride, v);
    expect_words_eq(back, src, what + how + " unpack");
  }
  if (!vec) return;
  std::fill(out.begin(), out.end(), 0xDEADBEEFu);
  if (source == MarlinSource::kCompressedTensors) {
    detail::marlin_repack_ct_rows_avx512(src.data(), stride, n, k / 16, out.data());
    return expect_words_eq(out, want, what + " avx512");
  }
  detail::marlin_repack_awq_rows_avx512(src.data(), stride, n, k / 16, out.data());
  expect_words_eq(out, want, what + " avx512");
  std::fill(back.begin(), back.end(), 0xDEADBEEFu);
  detail::marlin_unpack_awq_rows_avx512(want.data(), 2 * n, n, k / 16, back.data(), stride);
  expect_words_eq(back, src, what + " avx512 unpack");
}

}  // namespace

TEST(MarlinLayout, ClosedFormMatchesVllmPermutationTable) {
  // The first 16 entries of the permutation (IST-DASLab/marlin _get_perms builds the same list).
  const auto perm = vllm::get_weight_perm();
  ASSERT_EQ(perm.size(), 1024u);
  const int64_t head[16] = {0, 128, 8, 136, 16, 144, 24, 152, 256, 384, 264, 392, 272, 400, 280, 408};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(perm[i], head[i]) << i;
}

TEST(MarlinLayout, GptqRepackEqualsVllmReference) {
  const auto perm = vllm::get_weight_perm();
  uint32_t seed = 1;
  for (Shape s : vllm_shapes()) {
    const auto q = random_codes(s.k, s.n, seed++);
    const auto want = vllm::marlin_weights(q, s.k, s.n, perm);
    const auto qweight = vllm::gptq_pack(q, s.k, s.n);
    const std::string what = "K=" + std::to_string(s.k) + " N=" + std::to_string(s.n);
    expect_all_paths(qweight, s.k, s.n, want, what);
    // Round trip.
    std::vector<uint32_t> back(qweight.size());
    marlin_unpack(MarlinSource::kGptq, want.data(), static_cast<uint64_t>(2 * s.n), static_cast<uint64_t>(s.n), static_cast<uint64_t>(s.k), 0,
                  static_cast<uint64_t>(s.k / 16), back.data(), static_cast<uint64_t>(s.n));
    expect_words_eq(back, qweight, what + " unpack");
    std::fill(back.begin(), back.end(), 0xDEADBEEFu);
    marlin_unpack_reference(MarlinSource::kGptq, want.data(), static_cast<uint64_t>(s.n), static_cast<uint64_t>(s.k), 0,
                            static_cast<uint64_t>(s.k / 16), back.data(), static_cast<uint64_t>(s.n));
    expect_words_eq(back, qweight, what + " unpack closed form");
    std::fill(back.begin(), back.end(), 0xDEADBEEFu);
    detail::marlin_unpack_gptq_rows_scalar(want.data(), static_cast<uint64_t>(2 * s.n), static_cast<uint64_t>(s.n), static_cast<uint64_t>(s.k / 16),
                                           back.data(), static_cast<uint64_t>(s.n));
    expect_words_eq(back, qweight, what + " unpack scalar words");
    if (detail::marlin_avx512_on_this_cpu()) {
      std::fill(back.begin(), back.end(), 0xDEADBEEFu);
      detail::marlin_unpack_gptq_rows_avx512(want.data(), static_cast<uint64_t>(2 * s.n), static_cast<uint64_t>(s.n), static_cast<uint64_t>(s.k / 16),
                                             back.data(), static_cast<uint64_t>(s.n));
      expect_words_eq(back, qweight, what + " unpack avx512");
    }
  }
}

TEST(MarlinLayout, AwqAndCompressedTensorsRepackEqualVllmReference) {
  const auto perm = vllm::get_weight_perm();
  uint32_t seed = 100;
  for (Shape s : vllm_shapes()) {
    const auto q = random_codes(s.k, s.n, seed++);
    const auto want = vllm::marlin_weights(q, s.k, s.n, perm);
    const std::string what = "K=" + std::to_string(s.k) + " N=" + std::to_string(s.n);
    const uint64_t K = static_cast<uint64_t>(s.k), N = static_cast<uint64_t>(s.n);
    std::vector<uint32_t> out(want.size());
    // AWQ (vLLM's test_awq_marlin_repack packs with awq_pack).
    const auto awq = vllm::awq_pack(q, s.k, s.n);
    marlin_repack(MarlinSource::kAwq, awq.data(), N / 8, N, K, 0, K / 16, out.data());
    expect_words_eq(out, want, what + " awq");
    marlin_repack_reference(MarlinSource::kAwq, awq.data(), N / 8, N, K, 0, K / 16, out.data());
    expect_words_eq(out, want, what + " awq closed form");
    std::vector<uint32_t> back(awq.size());
    marlin_unpack(MarlinSource::kAwq, want.data(), 2 * N, N, K, 0, K / 16, back.data(), N / 8);
    expect_words_eq(back, awq, what + " awq unpack");
    std::fill(back.begin(), back.end(), 0u);
    marlin_unpack_reference(MarlinSource::kAwq, want.data(), N, K, 0, K / 16, back.data(), N / 8);
    expect_words_eq(back, awq, what + " awq unpack closed form");
    expect_paths_through_gptq(MarlinSource::kAwq, awq, N / 8, N, K, want, what + " awq");
    // compressed-tensors: weight_packed = gptq qweight transposed (vLLM repacks weight_packed.t()).
    const auto ct = transpose(vllm::gptq_pack(q, s.k, s.n), s.k / 8, s.n);
    marlin_repack(MarlinSource::kCompressedTensors, ct.data(), K / 8, N, K, 0, K / 16, out.data());
    expect_words_eq(out, want, what + " compressed-tensors");
    back.assign(ct.size(), 0);
    marlin_unpack(MarlinSource::kCompressedTensors, want.data(), 2 * N, N, K, 0, K / 16, back.data(), K / 8);
    expect_words_eq(back, ct, what + " compressed-tensors unpack");
    std::fill(back.begin(), back.end(), 0u);
    marlin_unpack_reference(MarlinSource::kCompressedTensors, want.data(), N, K, 0, K / 16, back.data(), K / 8);
    expect_words_eq(back, ct, what + " compressed-tensors unpack closed form");
    expect_paths_through_gptq(MarlinSource::kCompressedTensors, ct, K / 8, N, K, want, what + " compressed-tensors");
  }
}

TEST(MarlinLayout, RowRangesEqualSlicesOfTheWhole) {
  const int64_t k = 128 * 5, n = 64 * 7;
  const auto q = random_codes(k, n, 7);
  const auto want = vllm::marlin_weights(q, k, n, vllm::get_weight_perm());
  const auto gptq = vllm::gptq_pack(q, k, n);
  const auto awq = vllm::awq_pack(q, k, n);
  const auto ct = transpose(gptq, k / 8, n);
  const uint64_t K = k, N = n;
  for (auto [kt0, kt1] : {std::pair<uint64_t, uint64_t>{0, 1}, {3, 17}, {39, 40}, {11, 40}}) {
    std::vector<uint32_t> out((kt1 - kt0) * 2 * N);
    const std::vector<uint32_t> slice(want.begin() + static_cast<int64_t>(kt0 * 2 * N), want.begin() + static_cast<int64_t>(kt1 * 2 * N));
    marlin_repack(MarlinSource::kGptq, gptq.data() + 2 * kt0 * N, N, N, K, kt0, kt1, out.data());
    expect_words_eq(out, slice, "gptq rows");
    marlin_repack(MarlinSource::kAwq, awq.data() + 16 * kt0 * (N / 8), N / 8, N, K, kt0, kt1, out.data());
    expect_words_eq(out, slice, "awq rows");
    marlin_repack(MarlinSource::kCompressedTensors, ct.data() + 2 * kt0, K / 8, N, K, kt0, kt1, out.data());
    expect_words_eq(out, slice, "ct rows");
    std::vector<uint32_t> back((kt1 - kt0) * 2 * N, 0xDEADBEEF);
    marlin_unpack(MarlinSource::kGptq, slice.data(), 2 * N, N, K, kt0, kt1, back.data(), N);
    expect_words_eq(back, std::vector<uint32_t>(gptq.begin() + static_cast<int64_t>(2 * kt0 * N), gptq.begin() + static_cast<int64_t>(2 * kt1 * N)), "gptq unpack rows");
    std::vector<uint32_t> awq_back(16 * (kt1 - kt0) * (N / 8));
    marlin_unpack(MarlinSource::kAwq, slice.data(), 2 * N, N, K, kt0, kt1, awq_back.data(), N / 8);
    expect_words_eq(awq_back, std::vector<uint32_t>(awq.begin() + static_cast<int64_t>(16 * kt0 * (N / 8)), awq.begin() + static_cast<int64_t>(16 * kt1 * (N / 8))), "awq unpack rows");
    std::vector<uint32_t> ct_back(ct.size(), 0), ct_want(ct.size(), 0);
    marlin_unpack(MarlinSource::kCompressedTensors, slice.data(), 2 * N, N, K, kt0, kt1, ct_back.data() + 2 * kt0, K / 8);
    for (uint64_t r = 0; r < N; ++r)
      for (uint64_t j = 2 * kt0; j < 2 * kt1; ++j) ct_want[r * (K / 8) + j] = ct[r * (K / 8) + j];
    expect_words_eq(ct_back, ct_want, "ct unpack rows");
  }
}

TEST(MarlinLayout, UnpackOfAColumnStripeInPlaceEqualsOfItsCopy) {
  // Marlin column tiles [1, 4) of a 7-tile-wide B, unpacked where they lie (rows 2N words apart)
  // and from a dense copy of the stripe, to every source layout.
  const uint64_t K = 128 * 5, N = 64 * 7, c0 = 1, c1 = 4, sub = 64 * (c1 - c0);
  const auto want = vllm::marlin_weights(random_codes(K, N, 11), K, N, vllm::get_weight_perm());
  std::vector<uint32_t> stripe(K / 16 * 2 * sub);
  for (uint64_t kt = 0; kt < K / 16; ++kt)
    std::copy_n(want.begin() + static_cast<int64_t>(kt * 2 * N + 128 * c0), 2 * sub, stripe.begin() + static_cast<int64_t>(kt * 2 * sub));
  for (auto [source, stride] : {std::pair{MarlinSource::kGptq, sub}, {MarlinSource::kAwq, sub / 8},
                                {MarlinSource::kCompressedTensors, K / 8}}) {
    std::vector<uint32_t> in_place(K / 8 * sub, 1), copied(K / 8 * sub, 2);
    marlin_unpack(source, want.data() + 128 * c0, 2 * N, sub, K, 0, K / 16, in_place.data(), stride);
    marlin_unpack(source, stripe.data(), 2 * sub, sub, K, 0, K / 16, copied.data(), stride);
    expect_words_eq(in_place, copied, "source " + std::to_string(static_cast<int>(source)));
  }
}

TEST(MarlinLayout, ActOrderWithHeavyTiesEqualsVllmReference) {
  const auto perm = vllm::get_weight_perm();
  uint32_t seed = 300;
  int turn = 0;
  for (Shape s : vllm_shapes()) {
    // Each group size on a third of the shapes (every shape and size meet across K and N).
    for (int64_t group : {int64_t{32} << (turn++ % 3)}) {
      const uint64_t K = static_cast<uint64_t>(s.k), N = static_cast<uint64_t>(s.n), G = K / static_cast<uint64_t>(group);
      // The checkpoint as an act-order GPTQ writes it: row i of the stored codes is input channel
      // rand_perm[i], g_idx[i] = rand_perm[i] // group: every group is a run of `group` ties.
      auto q = random_codes(s.k, s.n, seed++);
      const auto rand_perm = act_order_perm(s.k, seed++);
      std::vector<int64_t> g_idx(K);
      for (uint64_t i = 0; i < K; ++i) g_idx[i] = rand_perm[i] / group;
      const auto qweight = vllm::gptq_pack(q, s.k, s.n);
      std::vector<int32_t> g32(g_idx.begin(), g_idx.end());
      // vLLM: sort_weights, then marlin_weights of the sorted codes.
      auto q_sorted = q;
      auto g_sorted = g_idx;
      const auto sort_idx = vllm::sort_weights(q_sorted, g_sorted, s.n);
      const auto want = vllm::marlin_weights(q_sorted, s.k, s.n, perm);
      // Ours: stable sort, gather the sorted rows in GPTQ layout, repack.
      std::vector<int32_t> sorted(K), p(K);
      ASSERT_TRUE(marlin_sort_g_idx(g32.data(), K, G, sorted.data(), p.data()));
      for (uint64_t i = 0; i < K; ++i) {
        ASSERT_EQ(p[i], sort_idx[i]);
        ASSERT_EQ(sorted[i], g_sorted[i]);
      }
      std::vector<uint32_t> gathered(K / 8 * N), out(want.size());
      marlin_gather_sorted_k(MarlinSource::kGptq, qweight.data(), N, N, K, p.data(), 0, K, gathered.data(), N);
      marlin_repack(MarlinSource::kGptq, gathered.data(), N, N, K, 0, K / 16, out.data());
      const std::string what = "act-order g=" + std::to_string(group) + " K=" + std::to_string(s.k) + " N=" + std::to_string(s.n);
      expect_words_eq(out, want, what);
      // From compressed-tensors' layout too (actorder "group" carries weight_g_idx).
      const auto ct = transpose(qweight, s.k / 8, s.n);
      marlin_gather_sorted_k(MarlinSource::kCompressedTensors, ct.data(), K / 8, N, K, p.data(), 0, K, gathered.data(), N);
      marlin_repack(MarlinSource::kGptq, gathered.data(), N, N, K, 0, K / 16, out.data());
      expect_words_eq(out, want, what + " ct");
      // Inverse: unpack to sorted rows, scatter back to the checkpoint's order.
      std::vector<uint32_t> back(qweight.size());
      marlin_unpack(MarlinSource::kGptq, want.data(), 2 * N, N, K, 0, K / 16, gathered.data(), N);
      marlin_scatter_sorted_k(MarlinSource::kGptq, gathered.data(), N, N, K, p.data(), back.data(), N);
      expect_words_eq(back, qweight, what + " round trip");
      marlin_scatter_sorted_k(MarlinSource::kCompressedTensors, gathered.data(), N, N, K, p.data(), back.data(), K / 8);
      expect_words_eq(back, ct, what + " ct round trip");
    }
  }
}

TEST(MarlinLayout, SortRefusesOutOfRangeGroupIndex) {
  const std::vector<int32_t> bad1 = {0, 1, 2, 3}, bad2 = {0, -1, 0, 0};
  std::vector<int32_t> s(4), p(4);
  EXPECT_FALSE(marlin_sort_g_idx(bad1.data(), 4, 3, s.data(), p.data()));
  EXPECT_FALSE(marlin_sort_g_idx(bad2.data(), 4, 3, s.data(), p.data()));
  EXPECT_TRUE(marlin_sort_g_idx(bad1.data(), 4, 4, s.data(), p.data()));
}

TEST(MarlinLayout, ScalesEqualVllmReferenceForEveryGroupSize) {
  for (Shape s : vllm_shapes()) {
    for (int64_t group : {int64_t{-1}, int64_t{32}, int64_t{64}, int64_t{128}, s.k}) {
      const int64_t G = group == -1 ? 1 : s.k / group;
      vllm::Mat sc(static_cast<size_t>(G * s.n));
      std::mt19937 rng(static_cast<uint32_t>(s.k * 7 + s.n + group));
      for (auto& v : sc) v = rng() & 0xFFFF;
      const auto want = vllm::marlin_permute_scales(sc, s.k, s.n, group);
      std::vector<uint16_t> in(sc.begin(), sc.end()), out(in.size()), back(in.size());
      const uint64_t N = static_cast<uint64_t>(s.n), K = static_cast<uint64_t>(s.k);
      marlin_permute_scales(reinterpret_cast<const uint8_t*>(in.data()), 2, N, K, group, 0, static_cast<uint64_t>(G),
                            reinterpret_cast<uint8_t*>(out.data()));
      for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], want[i]) << "g=" << group << " at " << i;
      marlin_unpermute_scales(reinterpret_cast<const uint8_t*>(out.data()), 2, N, K, group, 0, static_cast<uint64_t>(G),
                              reinterpret_cast<uint8_t*>(back.data()));
      EXPECT_EQ(back, in);
      // 4-byte elements (F32 scales) and a range of rows.
      std::vector<uint32_t> in4(sc.begin(), sc.end()), out4(in4.size());
      marlin_permute_scales(reinterpret_cast<const uint8_t*>(in4.data() + N), 4, N, K, group, 1, static_cast<uint64_t>(G),
                            reinterpret_cast<uint8_t*>(out4.data() + N));
      for (size_t i = N; i < out4.size(); ++i) ASSERT_EQ(out4[i], want[i]) << "f32 g=" << group;
    }
  }
}

TEST(MarlinLayout, BiasTakesTheChannelPermutation) {
  vllm::Mat b(256);
  std::iota(b.begin(), b.end(), 1000);
  const auto want = vllm::marlin_permute_scales(b, 1 << 20, 256, -1);  // marlin_permute_bias
  std::vector<uint16_t> in(b.begin(), b.end()), out(256), back(256);
  marlin_permute_bias(reinterpret_cast<const uint8_t*>(in.data()), 2, 256, reinterpret_cast<uint8_t*>(out.data()));
  for (size_t i = 0; i < 256; ++i) ASSERT_EQ(out[i], want[i]);
  marlin_unpermute_bias(reinterpret_cast<const uint8_t*>(out.data()), 2, 256, reinterpret_cast<uint8_t*>(back.data()));
  EXPECT_EQ(back, in);
}

TEST(MarlinLayout, ZeroPointsEqualVllmReference) {
  for (Shape s : vllm_shapes()) {
    for (int64_t groups : {int64_t{1}, s.k / 128, s.k / 32}) {
      const auto z = random_codes(groups, s.n, static_cast<uint32_t>(groups * 31 + s.n));
      const auto want = vllm::marlin_zero_points(z, groups, s.n);
      const uint64_t G = static_cast<uint64_t>(groups), N = static_cast<uint64_t>(s.n);
      std::vector<uint8_t> z8(z.begin(), z.end()), back(z8.size());
      std::vector<uint32_t> out(G * N / 8);
      ASSERT_TRUE(marlin_pack_zero_points(z8.data(), G, N, out.data()));
      expect_words_eq(out, want, "zero points");
      marlin_unpack_zero_points(out.data(), G, N, back.data());
      EXPECT_EQ(back, z8);
      // From AWQ's qzeros: vLLM's awq_to_marlin_zero_points against ours via int4_unpack's zeros.
      const auto awq_qzeros = vllm::awq_pack(z, groups, s.n);
      const auto want_awq = vllm::awq_to_marlin_zero_points(awq_qzeros, groups, s.n);
      expect_words_eq(want_awq, want, "awq_to_marlin_zero_points");
      ASSERT_TRUE(marlin_zero_points_from(MarlinSource::kAwq, 0, awq_qzeros.data(), G, N, out.data()));
      expect_words_eq(out, want, "from awq qzeros");
      // GPTQ v1 (stored zero - 1) and compressed-tensors' [N/8, G] packing of the same zeros.
      std::vector<uint32_t> gptq(G * N / 8, 0), ct(N / 8 * G, 0);
      bool has_zero = false;
      for (uint64_t g = 0; g < G; ++g)
        for (uint64_t c = 0; c < N; ++c) {
          const uint32_t v = static_cast<uint32_t>(z[g * N + c]);
          has_zero |= v == 0;
          gptq[g * (N / 8) + c / 8] |= ((v - 1) & 15u) << (4 * (c % 8));
          ct[(c / 8) * G + g] |= v << (4 * (c % 8));
        }
      ASSERT_TRUE(marlin_zero_points_from(MarlinSource::kCompressedTensors, 0, ct.data(), G, N, out.data()));
      expect_words_eq(out, want, "from compressed-tensors weight_zero_point");
      // v1 reads a stored 0xF as 16: refused whenever a zero was 0.
      EXPECT_EQ(marlin_zero_points_from(MarlinSource::kGptq, 1, gptq.data(), G, N, out.data()), !has_zero);
      if (!has_zero) expect_words_eq(out, want, "from gptq v1 qzeros");
    }
  }
}

TEST(MarlinLayout, ZeroPointsFromGptqV1AndV2) {
  const uint64_t G = 8, N = 448;
  std::mt19937 rng(12);
  vllm::Mat z(G * N);
  for (auto& v : z) v = 1 + rng() % 15;  // v1 holds 1..15
  const auto want = vllm::marlin_zero_points(z, G, N);
  std::vector<uint32_t> v1(G * N / 8, 0), v2(G * N / 8, 0), out(G * N / 8);
  for (uint64_t g = 0; g < G; ++g)
    for (uint64_t c = 0; c < N; ++c) {
      v1[g * (N / 8) + c / 8] |= static_cast<uint32_t>((z[g * N + c] - 1) & 15) << (4 * (c % 8));
      v2[g * (N / 8) + c / 8] |= static_cast<uint32_t>(z[g * N + c]) << (4 * (c % 8));
    }
  ASSERT_TRUE(marlin_zero_points_from(MarlinSource::kGptq, 1, v1.data(), G, N, out.data()));
  expect_words_eq(out, want, "v1");
  ASSERT_TRUE(marlin_zero_points_from(MarlinSource::kGptq, 0, v2.data(), G, N, out.data()));
  expect_words_eq(out, want, "v2");
}

TEST(MarlinLayout, ZeroPointSixteenIsRefused) {
  // A GPTQ v1 group with zero 0 (stored 0xF) reads back as 16: no Marlin uint4 zero holds it.
  std::vector<uint8_t> z(64, 8);
  std::vector<uint32_t> out(8);
  EXPECT_TRUE(marlin_pack_zero_points(z.data(), 1, 64, out.data()));
  z[17] = 16;
  EXPECT_FALSE(marlin_pack_zero_points(z.data(), 1, 64, out.data()));
}

TEST(MarlinLayout, ShapeProblems) {
  EXPECT_EQ(marlin_shape_problem(4096, 4096), "");
  EXPECT_NE(marlin_shape_problem(4096, 4100).find("multiple of 16"), std::string::npos);
  EXPECT_NE(marlin_shape_problem(4000, 4096).find("multiple of 64"), std::string::npos);
}
