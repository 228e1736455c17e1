// The INT4 definition (lib/ops/int4_quant.h): hand-checked scales, zeros and codes (rounding ties
// to even, odd asymmetric zeros, all-zero groups per format, tiny and overflowing scales,
// NaN/Inf), every CPU path against the scalar reference bit for bit on hard inputs (all dtypes,
// formats, group sizes, symmetries, odd shapes, column sub-ranges), and the packers + decoders of
// every format round-tripping the reference's codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"
#include "int4_cases.h"
#include "ops/float_convert.h"
#include "ops/int4_math.h"
#include "ops/int4_pack_detail.h"
#include "ops/int4_quant.h"

using namespace ckpt;
using namespace ckpt::ops;
using test::encode_floats;

namespace {

struct Quantized {
  Int4Issue issue;
  std::vector<Int4Params> params;
  std::vector<uint32_t> words;
  Fp8ErrorStats stats;
};

Quantized run_reference(const Int4Scheme& s, DType dt, const std::vector<uint8_t>& w, uint64_t n, uint64_t k) {
  const Int4Geometry geo = int4_geometry(s, n, k);
  Quantized q;
  q.params.resize(n * geo.groups);
  q.words.resize(n * ((k + 7) / 8));
  q.issue = int4_quantize_reference(s, geo, {w.data(), dt, k, 0, n, 0, k}, 0, k, q.params.data(), q.words.data(),
                                    (k + 7) / 8, &q.stats);
  return q;
}

uint32_t code_at(const Quantized& q, uint64_t k, uint64_t r, uint64_t c) {
  return (q.words[r * ((k + 7) / 8) + c / 8] >> (4 * (c % 8))) & 15u;
}

float f16_round(float x) { return f16_to_f32(f32_to_f16(x)); }

}  // namespace

TEST(Int4Quant, SymmetricCodesRoundHalfToEven) {
  // amax 7.5 -> S = 1 exactly: x / S are the values themselves.
  std::vector<float> x = {7.5f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -7.5f, 3.49f, 0, 0, 0, 0, 0, 0, 0, 0};
  const Int4Scheme s{Int4Format::kGptq, 16, true, DType::F16};
  const auto q = run_reference(s, DType::F32, encode_floats(x, DType::F32), 1, 16);
  ASSERT_FALSE(q.issue);
  EXPECT_EQ(q.params[0].scale, 1.0f);
  EXPECT_EQ(q.params[0].zero, 8);
  const uint32_t want[8] = {15 /* 8 + 8 clamps */, 8, 10, 10, 8, 6, 0, 11};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(code_at(q, 16, 0, i), want[i]) << i;
}

TEST(Int4Quant, AsymmetricZeroAndOddZeroTies) {
  // lo = -3, hi = 12: S = 1, z = 3 (odd): RNE(x / S) + z, not RNE(x / S + z).
  std::vector<float> x = {-3.0f, 12.0f, 0.5f, 1.5f, -0.5f, 2.5f, 0, 0};
  const Int4Scheme s{Int4Format::kAwq, 8, false, DType::F16};
  const auto q = run_reference(s, DType::F32, encode_floats(x, DType::F32), 1, 8);
  ASSERT_FALSE(q.issue);
  EXPECT_EQ(q.params[0].scale, 1.0f);
  EXPECT_EQ(q.params[0].zero, 3);
  const uint32_t want[6] = {0, 15, 3, 5, 3, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(code_at(q, 8, 0, i), want[i]) << i;
  // The range always contains 0: an all-positive group gets zero 0 and no clipped top.
  std::vector<float> pos = {1.5f, 15.0f, 3.0f, 7.5f, 1.5f, 1.5f, 1.5f, 1.5f};
  const auto p = run_reference(s, DType::F32, encode_floats(pos, DType::F32), 1, 8);
  EXPECT_EQ(p.params[0].zero, 0);
  EXPECT_EQ(code_at(p, 8, 0, 1), 15u);
  EXPECT_EQ(code_at(p, 8, 0, 0), 2u);  // 1.5 -> 2 (even)
}

TEST(Int4Quant, ScaleRoundedToItsDtypeBeforeUse) {
  // amax 1.0: 1 / 7.5 = 0.13333334f; as F16 0.13330078; codes use the F16 value.
  std::vector<float> x(32, 0.0f);
  x[0] = 1.0f;
  x[1] = 0.13330078125f * 6.5f;  // exactly a tie against the stored scale (not against 1/7.5)
  const Int4Scheme s{Int4Format::kGptq, 32, true, DType::F16};
  const auto q = run_reference(s, DType::F32, encode_floats(x, DType::F32), 1, 32);
  EXPECT_EQ(q.params[0].scale, f16_round(1.0f / 7.5f));
  EXPECT_EQ(code_at(q, 32, 0, 1), 6u + 8u);  // 6.5 -> 6
  // compressed-tensors with BF16 scales rounds to BF16.
  const Int4Scheme ct{Int4Format::kCompressedTensors, 32, true, DType::BF16};
  const auto c = run_reference(ct, DType::F32, encode_floats(x, DType::F32), 1, 32);
  EXPECT_EQ(c.params[0].scale, bf16_to_f32(f32_to_bf16(1.0f / 7.5f)));
}

TEST(Int4Quant, AllZeroGroupsTakeTheirFormatsReferenceParameters) {
  const std::vector<float> zeros(64, 0.0f);
  struct Case {
    Int4Format f;
    bool sym;
    DType scale;
    float want_scale;
    uint8_t want_zero;
  };
  const float gptq_scale = f16_round(2.0f / 15.0f);
  const Case cases[] = {
      {Int4Format::kGptq, true, DType::F16, gptq_scale, 8},
      {Int4Format::kGptq, false, DType::F16, gptq_scale, 7},  // RNE(1 / float32(2/15)) = RNE(7.4999995)
      {Int4Format::kAwq, false, DType::F16, 6.556510925292969e-07f, 0},
      {Int4Format::kAwq, true, DType::F16, 6.556510925292969e-07f, 8},
      {Int4Format::kCompressedTensors, true, DType::BF16, 0.0078125f, 8},
      {Int4Format::kCompressedTensors, false, DType::BF16, 0.0078125f, 8},
      {Int4Format::kCompressedTensors, true, DType::F16, 0.0009765625f, 8},
      {Int4Format::kCompressedTensors, true, DType::F32, 1.1920928955078125e-07f, 8},
  };
  for (const Case& c : cases) {
    const Int4Scheme s{c.f, 32, c.sym, c.scale};
    const auto q = run_reference(s, DType::BF16, encode_floats(zeros, DType::BF16), 1, 64);
    ASSERT_FALSE(q.issue);
    for (int g = 0; g < 2; ++g) {
      EXPECT_EQ(q.params[g].scale, c.want_scale) << int4_format_name(c.f) << " sym=" << c.sym;
      EXPECT_EQ(q.params[g].zero, c.want_zero) << int4_format_name(c.f) << " sym=" << c.sym;
    }
    for (int i = 0; i < 64; ++i) ASSERT_EQ(code_at(q, 64, 0, i), c.want_zero);
    EXPECT_EQ(q.stats.sum_sq_err, 0.0);
  }
}

TEST(Int4Quant, TinyScalesBecomeTheSmallestPositiveValue) {
  std::vector<float> x(32, 1e-30f);
  x[3] = -2e-30f;
  const Int4Scheme s{Int4Format::kGptq, 32, true, DType::F16};
  const auto q = run_reference(s, DType::F32, encode_floats(x, DType::F32), 1, 32);
  ASSERT_FALSE(q.issue);
  EXPECT_EQ(q.params[0].scale, std::ldexp(1.0f, -24));
  EXPECT_EQ(code_at(q, 32, 0, 0), 8u);
  const Int4Scheme a{Int4Format::kAwq, 32, false, DType::F16};
  const auto qa = run_reference(a, DType::F32, encode_floats(x, DType::F32), 1, 32);
  EXPECT_EQ(qa.params[0].scale, std::ldexp(1.0f, -24));
  EXPECT_EQ(qa.params[0].zero, 0);
}

TEST(Int4Quant, ScaleOverflowIsAnIssueNamingTheGroup) {
  std::vector<float> x(64, 1.0f);
  x[40] = 1e6f;  // 1e6 / 7.5 > 65504: no F16 scale
  const Int4Scheme s{Int4Format::kGptq, 32, true, DType::F16};
  const auto q = run_reference(s, DType::F32, encode_floats(x, DType::F32), 1, 64);
  ASSERT_TRUE(q.issue);
  EXPECT_EQ(q.issue.kind, Int4Issue::kScaleOverflow);
  EXPECT_EQ(q.issue.row, 0u);
  EXPECT_EQ(q.issue.col, 32u);
  EXPECT_EQ(q.issue.value, 1e6f);
  // BF16 scales hold it.
  const Int4Scheme ct{Int4Format::kCompressedTensors, 32, true, DType::BF16};
  EXPECT_FALSE(run_reference(ct, DType::F32, encode_floats(x, DType::F32), 1, 64).issue);
  try {
    int4_fail(q.issue, s, "model.safetensors", "model.layers.0.mlp.down_proj.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kCheckFailed);
    EXPECT_EQ(e.tensor(), "model.layers.0.mlp.down_proj.weight");
    EXPECT_NE(e.rule().find("F16"), std::string::npos) << e.rule();
  }
}

// The tests below run every path of int4_paths_on_this_cpu(): on an AVX-512 machine that must
// include the AVX2 loop too, so both vector loops are checked wherever the tests run there.
TEST(Int4Quant, EveryVectorPathThisCpuRunsIsListed) {
  const std::vector<Int4Path> paths = int4_paths_on_this_cpu();
  auto has = [&](Int4Path p) { return std::find(paths.begin(), paths.end(), p) != paths.end(); };
  EXPECT_EQ(paths.front(), Int4Path::kPortable);
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(has(Int4Path::kAvx2), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  EXPECT_EQ(has(Int4Path::kAvx512), __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"));
#endif
  if (has(Int4Path::kAvx512)) {
    EXPECT_TRUE(has(Int4Path::kAvx2));
  }
}

TEST(Int4Quant, NonFiniteElementsAreIssuesOnEveryPath) {
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      std::vector<float> x(3 * 128, 0.5f);
      x[128 + 70] = bad;
      x[128 + 90] = bad;  // the first one is reported
      x[2 * 128 + 5] = bad;
      const auto w = encode_floats(x, dt);
      const Int4Scheme s{Int4Format::kCompressedTensors, 64, false, DType::BF16};
      const Int4Geometry geo = int4_geometry(s, 3, 128);
      for (Int4Path path : int4_paths_on_this_cpu()) {
        std::vector<Int4Params> p(6);
        std::vector<uint32_t> words(3 * 16);
        const Int4Issue i = int4_quantize_fast_on(path, s, geo, {w.data(), dt, 128, 0, 3, 0, 128}, 0, 128, p.data(),
                                                  words.data(), 16, nullptr);
        ASSERT_EQ(i.kind, Int4Issue::kNonFinite) << int4_path_name(path);
        EXPECT_EQ(i.row, 1u);
        EXPECT_EQ(i.col, 70u);
        EXPECT_EQ(std::isnan(i.value), std::isnan(bad));
      }
      const auto q = run_reference(s, dt, w, 3, 128);
      EXPECT_EQ(q.issue.col, 70u);
      try {
        int4_fail(q.issue, s, "f.safetensors", "w");
        FAIL();
      } catch (const Error& e) {
        EXPECT_NE(e.rule().find("NaN or Inf"), std::string::npos);
      }
    }
  }
}

TEST(Int4Quant, FastPathsEqualTheReference) {
  struct Shape {
    uint64_t n, k;
    int64_t group;
  };
  const Shape shapes[] = {{8, 128, 32}, {16, 384, 128}, {24, 256, 64}, {8, 136, -1}, {16, 1024, 128},
                          {8, 96, 8},   {8, 100, -1},   {8, 48, 24},   {40, 512, 32}};
  int cases = 0;
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq, Int4Format::kCompressedTensors})
      for (bool sym : {true, false})
        for (const Shape& sh : shapes) {
          Int4Scheme s{f, sh.group, sym, f == Int4Format::kCompressedTensors ? dt : DType::F16};
          if (!int4_shape_problem(s, sh.n, sh.k).empty()) continue;
          const Int4Geometry geo = int4_geometry(s, sh.n, sh.k);
          const auto w = test::int4_hard_weight(sh.n, sh.k, geo.group, dt, static_cast<uint32_t>(++cases));
          // Whole rows, and a block of later groups with a column sub-range.
          const uint64_t gs = geo.group;
          struct Block {
            uint64_t row0, rows, col0, cols, kb, ke;
          };
          std::vector<Block> blocks = {{0, sh.n, 0, sh.k, 0, sh.k}};
          if (geo.groups >= 3 && gs % 8 == 0) blocks.push_back({3, sh.n - 3, gs, 2 * gs, gs + 8, 3 * gs - 8});
          for (const Block& b : blocks) {
            const size_t es = dtype_bits(dt) / 8;
            const Int4Source src{w.data() + (b.row0 * sh.k + b.col0) * es, dt, sh.k, b.row0, b.rows, b.col0, b.cols};
            const uint64_t nw = (b.ke - b.kb + 7) / 8, ng = b.cols / gs;
            std::vector<Int4Params> pr(b.rows * ng);
            std::vector<uint32_t> wr(b.rows * nw);
            Fp8ErrorStats sr;
            ASSERT_FALSE(int4_quantize_reference(s, geo, src, b.kb, b.ke, pr.data(), wr.data(), nw, &sr));
            for (Int4Path path : int4_paths_on_this_cpu()) {
              std::vector<Int4Params> pf(pr.size());
              std::vector<uint32_t> wf(wr.size(), 0xA5A5A5A5u);
              Fp8ErrorStats sf;
              const Int4Issue i = int4_quantize_fast_on(path, s, geo, src, b.kb, b.ke, pf.data(), wf.data(), nw, &sf);
              const std::string what = std::string(int4_path_name(path)) + " " + std::string(dtype_name(dt)) + " " +
                                       int4_format_name(f) + (sym ? " sym" : " asym") + " [" + std::to_string(sh.n) +
                                       "," + std::to_string(sh.k) + "] g" + std::to_string(sh.group) + " block col0 " +
                                       std::to_string(b.col0);
              ASSERT_FALSE(i) << what;
              for (size_t j = 0; j < pr.size(); ++j) {
                ASSERT_EQ(std::memcmp(&pf[j].scale, &pr[j].scale, 4), 0) << what << " scale " << j;
                ASSERT_EQ(pf[j].zero, pr[j].zero) << what << " zero " << j;
              }
              for (size_t j = 0; j < wr.size(); ++j) ASSERT_EQ(wf[j], wr[j]) << what << " word " << j;
              EXPECT_NEAR(sf.sum_sq_err, sr.sum_sq_err, 1e-5 * sr.sum_sq_err + 1e-30) << what;
              EXPECT_NEAR(sf.sum_sq, sr.sum_sq, 1e-5 * sr.sum_sq) << what;
              // (the vector loop may fuse x - (q - z) * S into one FMA: last bits differ with F32 scales)
              EXPECT_NEAR(sf.max_abs_err, sr.max_abs_err, 1e-6 * sr.max_abs_err) << what;
            }
          }
        }
  EXPECT_GT(cases, 100);
}

// int4_quantize_qweight (the CPU engine's GPTQ/AWQ strips: quantize and lay out in one pass, with
// non-temporal stores of whole lines) against the reference's words put where the layout table
// (int4_code_at) says, its parameters against the reference's. Blocks that start and end off the
// 16 / 128-row pieces (row counts that are not a multiple of them), odd shapes (N = 8 + 16 x,
// K % 16 != 0, AWQ K % 8 != 0 with a group of 12), every input dtype, and qweight arrays whose
// start is a whole line and whose start is not (the stores fall back to plain ones there).
TEST(Int4Quant, QweightInOnePassEqualsTheReference) {
  struct Shape {
    uint64_t n, k;
    int64_t group;
  };
  const Shape shapes[] = {{136, 256, 128}, {264, 96, 32}, {40, 1024, -1}, {1032, 128, 64}, {8, 24, 8}, {24, 36, 12}, {392, 136, 8},
                          {256, 64, 32}};  // the last: every line of qweight whole (N % 128 == 0)
  int cases = 0;
  for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq})
    for (DType dt : {DType::BF16, DType::F16, DType::F32})
      for (bool sym : {true, false})
        for (const Shape& sh : shapes) {
          const Int4Scheme s{f, sh.group, sym, DType::F16};
          if (!int4_shape_problem(s, sh.n, sh.k).empty()) continue;
          const Int4Geometry geo = int4_geometry(s, sh.n, sh.k);
          const auto w = test::int4_hard_weight(sh.n, sh.k, geo.group, dt, static_cast<uint32_t>(++cases));
          const Quantized ref = run_reference(s, dt, w, sh.n, sh.k);
          ASSERT_FALSE(ref.issue);
          const Int4Shapes shp = int4_shapes(s, sh.n, sh.k);
          const uint64_t nq = shp.weights[0] * shp.weights[1];
          std::vector<uint32_t> want(nq, 0);
          for (uint64_t r = 0; r < sh.n; ++r)
            for (uint64_t c = 0; c < sh.k; ++c) {
              const Int4Nibble at = int4_code_at(f == Int4Format::kGptq ? kInt4Gptq : kInt4Awq, sh.n, sh.k, r, c);
              want[at.word] |= code_at(ref, sh.k, r, c) << at.shift;
            }
          // Row blocks: whole, and split at rows 8, 8 + 72 (multiples of 8, not of 16 or 128).
          std::vector<std::pair<uint64_t, uint64_t>> splits = {{0, sh.n}};
          if (sh.n > 80) splits = {{0, 8}, {8, 80}, {80, sh.n}};
          for (uint64_t misalign : {0, 1}) {
            std::vector<uint32_t> buf(nq + 32, 0xA5A5A5A5u);
            uint32_t* base = buf.data();
            while (reinterpret_cast<uintptr_t>(base) % 64 != 0) ++base;
            uint32_t* qweight = base + misalign;
            std::vector<Int4Params> params(sh.n * geo.groups);
            Fp8ErrorStats st;
            const size_t es = dtype_bits(dt) / 8;
            const std::string what = std::string(dtype_name(dt)) + " " + int4_format_name(f) + (sym ? " sym" : " asym") +
                                     " [" + std::to_string(sh.n) + "," + std::to_string(sh.k) + "] g" +
                                     std::to_string(sh.group) + (misalign ? " off a line" : "");
            for (auto [a, b] : splits) {
              const Int4Source src{w.data() + a * sh.k * es, dt, sh.k, a, b - a, 0, sh.k};
              ASSERT_FALSE(int4_quantize_qweight(s, geo, src, params.data() + a * geo.groups, qweight, &st)) << what;
            }
            for (uint64_t i = 0; i < nq; ++i) ASSERT_EQ(qweight[i], want[i]) << what << " word " << i;
            for (size_t j = 0; j < params.size(); ++j) {
              ASSERT_EQ(std::memcmp(&params[j].scale, &ref.params[j].scale, 4), 0) << what << " scale " << j;
              ASSERT_EQ(params[j].zero, ref.params[j].zero) << what << " zero " << j;
            }
            EXPECT_NEAR(st.sum_sq_err, ref.stats.sum_sq_err, 1e-5 * ref.stats.sum_sq_err + 1e-30) << what;
            EXPECT_NEAR(st.sum_sq, ref.stats.sum_sq, 1e-5 * ref.stats.sum_sq) << what;
            EXPECT_NEAR(st.max_abs_err, ref.stats.max_abs_err, 1e-6 * ref.stats.max_abs_err) << what;
          }
        }
  EXPECT_GT(cases, 50);
  // A NaN in a later piece of a block that starts off the pieces: the issue names its element.
  for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq}) {
    const Int4Scheme s{f, 32, f == Int4Format::kGptq, DType::F16};
    const Int4Geometry geo = int4_geometry(s, 400, 64);
    std::vector<float> x(400 * 64, 0.25f);
    x[300 * 64 + 37] = std::nanf("");
    const auto w = encode_floats(x, DType::F32);
    std::vector<Int4Params> params(400 * geo.groups);
    std::vector<uint32_t> qweight(400 * 64 / 8);
    const Int4Issue i = int4_quantize_qweight(s, geo, {w.data() + 8 * 64 * 4, DType::F32, 64, 8, 392, 0, 64},
                                              params.data(), qweight.data(), nullptr);
    EXPECT_EQ(i.kind, Int4Issue::kNonFinite) << int4_format_name(f);
    EXPECT_EQ(i.row, 300u) << int4_format_name(f);
    EXPECT_EQ(i.col, 37u) << int4_format_name(f);
  }
}

TEST(Int4Quant, ParamsAloneEqualTheQuantizersParams) {
  const Int4Scheme s{Int4Format::kAwq, 64, false, DType::F16};
  const auto w = test::int4_hard_weight(16, 512, 64, DType::BF16, 9);
  const Int4Geometry geo = int4_geometry(s, 16, 512);
  std::vector<Int4Params> p(16 * 8);
  ASSERT_FALSE(int4_params_reference(s, geo, {w.data(), DType::BF16, 512, 0, 16, 0, 512}, p.data()));
  const auto q = run_reference(s, DType::BF16, w, 16, 512);
  for (size_t j = 0; j < p.size(); ++j) {
    EXPECT_EQ(p[j].scale, q.params[j].scale);
    EXPECT_EQ(p[j].zero, q.params[j].zero);
  }
  // The fast path with an empty column range: parameters alone.
  for (Int4Path path : int4_paths_on_this_cpu()) {
    std::vector<Int4Params> f(p.size());
    ASSERT_FALSE(int4_quantize_fast_on(path, s, geo, {w.data(), DType::BF16, 512, 0, 16, 0, 512}, 0, 0, f.data(),
                                       nullptr, 0, nullptr));
    for (size_t j = 0; j < p.size(); ++j) {
      EXPECT_EQ(f[j].scale, p[j].scale) << int4_path_name(path);
      EXPECT_EQ(f[j].zero, p[j].zero) << int4_path_name(path);
    }
  }
}

TEST(Int4Quant, PackedFormatsDecodeToTheReferenceValues) {
  for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq, Int4Format::kCompressedTensors})
    for (bool sym : {true, false})
      for (int64_t group : {32, 128, -1}) {
        const uint64_t n = 24, k = 256;
        const Int4Scheme s{f, group, sym, f == Int4Format::kCompressedTensors ? DType::BF16 : DType::F16};
        const Int4Geometry geo = int4_geometry(s, n, k);
        const auto w = test::int4_hard_weight(n, k, geo.group, DType::BF16, 5);
        const auto q = run_reference(s, DType::BF16, w, n, k);
        const auto a = test::int4_reference_arrays(s, DType::BF16, w, n, k);
        const Int4Stored st{a.weights.data(), a.zeros.empty() ? nullptr : a.zeros.data(), a.scales.data(),
                            a.g_idx.empty() ? nullptr : a.g_idx.data()};
        std::vector<float> deq(n * k);
        ASSERT_TRUE(int4_decode(s, geo, st, 0, n, deq.data()));
        std::vector<uint8_t> codes(n * k), zeros(n * geo.groups);
        std::vector<float> scales(n * geo.groups);
        int4_unpack(s, geo, st, 0, n, codes.data(), zeros.data(), scales.data());
        for (uint64_t r = 0; r < n; ++r)
          for (uint64_t c = 0; c < k; ++c) {
            const Int4Params& p = q.params[r * geo.groups + c / geo.group];
            const uint32_t code = code_at(q, k, r, c);
            ASSERT_EQ(codes[r * k + c], code);
            uint32_t z = p.zero;
            if (f == Int4Format::kGptq && z == 0) z = 16;  // v1: stored 0xF reads back as 16
            if (f == Int4Format::kCompressedTensors && sym) z = 8;
            ASSERT_EQ(zeros[r * geo.groups + c / geo.group], z) << int4_format_name(f);
            ASSERT_EQ(scales[r * geo.groups + c / geo.group], p.scale);
            ASSERT_EQ(deq[r * k + c], static_cast<float>(static_cast<int>(code) - static_cast<int>(z)) * p.scale);
          }
      }
}

TEST(Int4Quant, GptqV1CannotHoldZeroZero) {
  EXPECT_FALSE(int4_gptq_v1_zero_ok(0));
  EXPECT_TRUE(int4_gptq_v1_zero_ok(1));
  // v2 stores the zero itself.
  const Int4Scheme v2{Int4Format::kGptq, 8, false, DType::F16, 0};
  const std::vector<float> pos = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
                                  1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
                                  1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};
  const auto a = test::int4_reference_arrays(v2, DType::F32, encode_floats(pos, DType::F32), 8, 8);
  EXPECT_EQ(a.zeros[0], 0u);
  const auto b = test::int4_reference_arrays(Int4Scheme{Int4Format::kGptq, 8, false, DType::F16, 1}, DType::F32,
                                             encode_floats(pos, DType::F32), 8, 8);
  EXPECT_EQ(b.zeros[0], 0xFFFFFFFFu);
}

TEST(Int4Quant, ChunkedPackingEqualsWholeTensorPacking) {
  // What a streaming producer does: any row block and 8-aligned column range, packed into place.
  const uint64_t n = 64, k = 512;
  for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq, Int4Format::kCompressedTensors}) {
    const Int4Scheme s{f, 128, false, f == Int4Format::kCompressedTensors ? DType::BF16 : DType::F16};
    const Int4Geometry geo = int4_geometry(s, n, k);
    const auto w = test::int4_hard_weight(n, k, 128, DType::BF16, 11);
    const auto whole = test::int4_reference_arrays(s, DType::BF16, w, n, k);
    test::Int4Arrays parts = whole;
    std::fill(parts.weights.begin(), parts.weights.end(), 0u);
    std::fill(parts.zeros.begin(), parts.zeros.end(), 0u);
    std::fill(parts.scales.begin(), parts.scales.end(), 0);
    for (uint64_t r0 = 0; r0 < n; r0 += 16)
      for (uint64_t g = 0; g < geo.groups; ++g) {
        const uint64_t kb = g * 128 + (g % 2 ? 0 : 8), ke = (g + 1) * 128;  // a range not starting at the group
        const Int4Source src{w.data() + (r0 * k + g * 128) * 2, DType::BF16, k, r0, 16, g * 128, 128};
        std::vector<Int4Params> p(16);
        std::vector<uint32_t> words(16 * 16);
        ASSERT_FALSE(int4_quantize_fast(s, geo, src, kb, ke, p.data(), words.data(), 16, nullptr));
        const uint64_t nw = (ke - kb) / 8;
        switch (f) {
          case Int4Format::kGptq: int4_words_to_gptq(words.data(), 16, 16, nw, parts.weights.data() + kb / 8 * n + r0, n); break;
          case Int4Format::kAwq: int4_words_to_awq(words.data(), 16, 16, nw, parts.weights.data() + kb * (n / 8) + r0 / 8, n / 8); break;
          case Int4Format::kCompressedTensors:
            for (uint64_t r = 0; r < 16; ++r)
              std::copy(words.begin() + static_cast<int64_t>(r * 16), words.begin() + static_cast<int64_t>(r * 16 + nw),
                        parts.weights.begin() + static_cast<int64_t>((r0 + r) * (k / 8) + kb / 8));
            break;
        }
        const Int4ParamsView v{p.data(), 1, r0, 16, g, 1};
        int4_store_scales(s, geo, v, parts.scales.data());
        int4_store_zeros(s, geo, v, parts.zeros.data());
      }
    // Columns [g * 128, g * 128 + 8) of even groups were skipped on purpose: fill them from the whole.
    for (uint64_t g = 0; g < geo.groups; g += 2)
      for (uint64_t r = 0; r < n; ++r) {
        switch (f) {
          case Int4Format::kGptq: parts.weights[g * 16 * n + r] = whole.weights[g * 16 * n + r]; break;
          case Int4Format::kCompressedTensors: parts.weights[r * (k / 8) + g * 16] = whole.weights[r * (k / 8) + g * 16]; break;
          case Int4Format::kAwq:
            for (uint64_t c = 0; c < 8; ++c) parts.weights[(g * 128 + c) * (n / 8) + r / 8] = whole.weights[(g * 128 + c) * (n / 8) + r / 8];
            break;
        }
      }
    EXPECT_EQ(parts.weights, whole.weights) << int4_format_name(f);
    EXPECT_EQ(parts.zeros, whole.zeros) << int4_format_name(f);
    EXPECT_EQ(parts.scales, whole.scales) << int4_format_name(f);
  }
}

TEST(Int4Quant, TransformsInvert) {
  std::mt19937 rng(3);
  const uint64_t rows = 40, nw = 24;
  std::vector<uint32_t> words(rows * nw), g(nw * rows), a(nw * 8 * rows / 8), back(words.size());
  for (auto& v : words) v = rng();
  int4_words_to_gptq(words.data(), nw, rows, nw, g.data(), rows);
  int4_gptq_to_words(g.data(), rows, rows, nw, back.data(), nw);
  EXPECT_EQ(back, words);
  int4_words_to_awq(words.data(), nw, rows, nw, a.data(), rows / 8);
  std::fill(back.begin(), back.end(), 0u);
  int4_awq_to_words(a.data(), rows / 8, rows, nw, back.data(), nw);
  EXPECT_EQ(back, words);
}

TEST(Int4Quant, ShapeProblems) {
  const Int4Scheme gptq{Int4Format::kGptq, 128, true, DType::F16};
  EXPECT_EQ(int4_shape_problem(gptq, 4096, 4096), "");
  EXPECT_NE(int4_shape_problem(gptq, 4096, 4000).find("multiple of the group size 128"), std::string::npos);
  EXPECT_NE(int4_shape_problem(gptq, 4100, 4096).find("multiple of 8"), std::string::npos);
  const Int4Scheme channel{Int4Format::kGptq, -1, true, DType::F16};
  EXPECT_NE(int4_shape_problem(channel, 4096, 4004).find("multiple of 8"), std::string::npos);
  const Int4Scheme ct{Int4Format::kCompressedTensors, -1, false, DType::BF16};
  EXPECT_EQ(int4_shape_problem(ct, 4100, 4004), "");  // compressed-tensors pads
  EXPECT_NE(int4_shape_problem(Int4Scheme{Int4Format::kAwq, 128, false, DType::BF16}, 64, 128).find("F16"),
            std::string::npos);
  EXPECT_NE(int4_shape_problem(Int4Scheme{Int4Format::kAwq, 0, false, DType::F16}, 64, 128).find("group size"),
            std::string::npos);
  const Int4Shapes sh = int4_shapes(ct, 4100, 4004);
  EXPECT_EQ(sh.weights, (std::vector<uint64_t>{4100, 501}));
  EXPECT_EQ(sh.zeros, (std::vector<uint64_t>{513, 1}));
  EXPECT_EQ(sh.scales, (std::vector<uint64_t>{4100, 1}));
}

TEST(Int4Quant, VectorTransformsEqualScalarOnes) {
  if (!detail::pack_avx512_on_this_cpu()) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(4);
  for (auto [rows, cols] : {std::pair<uint64_t, uint64_t>{136, 40}, {16, 16}, {264, 3}, {5, 300}, {17, 33}, {352, 47}}) {
    std::vector<uint32_t> in(rows * cols), a(rows * cols, 1), b(rows * cols, 2);
    for (auto& v : in) v = rng();
    detail::transpose32_scalar(in.data(), cols, rows, cols, a.data(), rows);
    detail::transpose32_avx512(in.data(), cols, rows, cols, b.data(), rows);
    EXPECT_EQ(a, b) << rows << "x" << cols;
  }
  for (uint64_t n : {128u, 392u, 1024u}) {
    const uint64_t nrows = 3;
    std::vector<uint32_t> g(nrows * n), a(8 * nrows * n / 8, 1), b(a.size(), 2), back(g.size());
    for (auto& v : g) v = rng();
    detail::gptq_to_awq_scalar(g.data(), n, nrows, n, a.data(), n / 8);
    detail::gptq_to_awq_avx512(g.data(), n, nrows, n, b.data(), n / 8);
    EXPECT_EQ(a, b) << n;
    detail::awq_to_gptq_avx512(b.data(), n / 8, nrows, n, back.data(), n);
    EXPECT_EQ(back, g) << n;
    std::fill(back.begin(), back.end(), 0u);
    detail::awq_to_gptq_scalar(a.data(), n / 8, nrows, n, back.data(), n);
    EXPECT_EQ(back, g) << n;
  }
}

// K-packed words straight to AWQ's qweight (int4_words_to_awq's kernel): the AVX-512 tiles (128
// rows x 16 words, masked at every edge) and the scalar loop against the definition and against
// the former route through GPTQ's layout, on shapes that are not whole tiles: row counts that are
// not a multiple of 128, word counts not a multiple of 16, and a last word cut short (ncols % 8).
TEST(Int4Quant, WordsToAwqEqualsItsDefinition) {
  std::mt19937 rng(5);
  for (auto [rows, ncols] : {std::pair<uint64_t, uint64_t>{128, 128}, {8, 8}, {136, 40}, {264, 300}, {1024, 1032},
                             {56, 5}, {2048 + 120, 96}, {40, 1021}}) {
    const uint64_t nw = (ncols + 7) / 8, ws = nw + 3, os = rows / 8 + 5;  // strides wider than the block
    std::vector<uint32_t> words(rows * ws);
    for (auto& v : words) v = rng();
    std::vector<uint32_t> want(ncols * os, 0xDEADBEEFu);
    for (uint64_t k = 0; k < ncols; ++k)
      for (uint64_t m = 0; m < rows / 8; ++m) {
        uint32_t w = 0;
        for (int i = 0; i < 8; ++i)
          w |= ((words[(8 * m + static_cast<uint64_t>(kAwqOrder[i])) * ws + k / 8] >> (4 * (k % 8))) & 15u) << (4 * i);
        want[k * os + m] = w;
      }
    std::vector<uint32_t> got(want.size(), 0xDEADBEEFu);
    detail::words_to_awq_scalar(words.data(), ws, rows, ncols, got.data(), os);
    EXPECT_EQ(got, want) << "scalar " << rows << " x " << ncols;
    if (detail::pack_avx512_on_this_cpu()) {
      std::fill(got.begin(), got.end(), 0xDEADBEEFu);
      detail::words_to_awq_avx512(words.data(), ws, rows, ncols, got.data(), os);
      EXPECT_EQ(got, want) << "avx512 " << rows << " x " << ncols;
    }
    if (ncols % 8 == 0) {  // the former route: a 32-bit transpose to GPTQ's layout, then GPTQ -> AWQ
      std::vector<uint32_t> g(nw * rows), via(want.size(), 0xDEADBEEFu);
      detail::transpose32_scalar(words.data(), ws, rows, nw, g.data(), rows);
      detail::gptq_to_awq_scalar(g.data(), rows, nw, rows, via.data(), os);
      EXPECT_EQ(via, want) << "via gptq " << rows << " x " << ncols;
    }
  }
}

// The kernels' 8 x 8 nibble transpose (AWQ words in kernels/int4_quant.cu and marlin_repack.cu)
// against its definition, nibble by nibble; applied twice it is the identity.
TEST(Int4Quant, NibbleTransposeOfEightWords) {
  std::mt19937 rng(8);
  for (int rep = 0; rep < 100; ++rep) {
    uint32_t in[8], a[8];
    for (int r = 0; r < 8; ++r) in[r] = a[r] = rng();
    int4_nibble_transpose8(a);
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < 8; ++c) ASSERT_EQ((a[c] >> (4 * r)) & 15u, (in[r] >> (4 * c)) & 15u) << r << ", " << c;
    int4_nibble_transpose8(a);
    EXPECT_TRUE(std::equal(a, a + 8, in));
  }
}

TEST(Int4Quant, SubnormalInputsAndScalesOnEveryPath) {
  for (bool sym : {true, false}) {
    const Int4Scheme s{Int4Format::kCompressedTensors, 32, sym, DType::F32};
    std::vector<float> x(8 * 64);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 13) - 5) * 1e-41f;
    for (size_t i = 256; i < 288; ++i) x[i] = static_cast<float>(i % 7) * 3e-45f;
    const auto w = encode_floats(x, DType::F32);
    const auto want = run_reference(s, DType::F32, w, 8, 64);
    ASSERT_FALSE(want.issue);
    const Int4Geometry geo = int4_geometry(s, 8, 64);
    for (Int4Path path : int4_paths_on_this_cpu()) {
      std::vector<Int4Params> p(16);
      std::vector<uint32_t> words(64);
      ASSERT_FALSE(int4_quantize_fast_on(path, s, geo, {w.data(), DType::F32, 64, 0, 8, 0, 64}, 0, 64, p.data(),
                                         words.data(), 8, nullptr));
      EXPECT_EQ(words, want.words) << int4_path_name(path);
      for (size_t j = 0; j < p.size(); ++j) {
        EXPECT_EQ(p[j].scale, want.params[j].scale) << int4_path_name(path) << " " << j;
        EXPECT_EQ(p[j].zero, want.params[j].zero) << int4_path_name(path) << " " << j;
      }
    }
  }
}
