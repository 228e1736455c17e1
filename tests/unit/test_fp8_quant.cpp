// The FP8 quantizer's math: the reference against torch's own clamp+cast results, the rules for
// scales (rounding to the stored dtype, amax 0, tiny amax), and the CPU fast path against the
// reference bit for bit for all three schemes: edge blocks, zero blocks, ±448, rounding ties, and
// chunk boundaries anywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "ops/fp8_quant.h"
#include "tensor_bytes.h"
#include "test_support.h"

using namespace ckpt;
using namespace ckpt::ops;

namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Encodes float32 values into the input dtype (exactly representable values are chosen by the
// callers where it matters; otherwise RNE, as torch would store them).
std::vector<uint8_t> encode(const std::vector<float>& v, DType dt) {
  if (dt == DType::F32) return f32_bytes(v);
  std::vector<uint8_t> b(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t h = dt == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    std::memcpy(&b[2 * i], &h, 2);
  }
  return b;
}

// Every e4m3fn value, its midpoints with the next value (the ties) and their float neighbours.
std::vector<float> e4m3_ties_and_neighbours() {
  std::vector<float> v;
  for (int c = 0; c < 0x7E; ++c) {
    float a = e4m3fn_to_f32(static_cast<uint8_t>(c)), b = e4m3fn_to_f32(static_cast<uint8_t>(c + 1));
    float mid = a + (b - a) / 2;  // exact: at most 5 significant bits
    for (float x : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      v.push_back(x);
      v.push_back(-x);
    }
  }
  for (float x : {448.0f, 448.5f, 463.99f, 464.0f, 464.01f, 480.0f, 1e30f}) {
    v.push_back(x);
    v.push_back(-x);
  }
  return v;
}

struct Case {
  uint64_t rows, cols;
  Fp8Grid grid;
};

std::vector<Case> cases() {
  std::vector<Case> cs;
  for (auto [r, c] : std::vector<std::pair<uint64_t, uint64_t>>{{1, 1}, {7, 13}, {128, 128}, {130, 300}, {256, 384}, {300, 129}, {3, 2000}}) {
    cs.push_back({r, c, Fp8Grid::per_tensor(r, c)});
    cs.push_back({r, c, Fp8Grid::per_channel(r, c)});
    cs.push_back({r, c, Fp8Grid::blocks(r, c, 128, 128)});
    cs.push_back({r, c, Fp8Grid::blocks(r, c, 16, 24)});
  }
  return cs;
}

// Random weights with structure: a zero block, a block with a single huge outlier, exact ties.
std::vector<float> weights(const Case& c, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 0.05f);
  std::vector<float> w(c.rows * c.cols);
  for (auto& x : w) x = n(rng);
  if (w.size() > 10) {
    w[w.size() - 1] = 448.0f;  // the scale becomes exactly 1 when this dominates its block
    w[w.size() - 2] = -3.25f;
    w[w.size() / 2] = 1e4f;
  }
  // With several blocks, the one holding element (0,0) is all zeros.
  if (c.grid.groups() > 1)
    for (uint64_t r = 0; r < std::min(c.rows, c.grid.block_rows); ++r)
      for (uint64_t k = 0; k < std::min(c.cols, c.grid.block_cols); ++k) w[r * c.cols + k] = 0.0f;
  return w;
}

void split_ranges(uint64_t n, std::mt19937& rng, std::vector<std::pair<uint64_t, uint64_t>>& out) {
  out.clear();
  std::uniform_int_distribution<uint64_t> step(1, std::max<uint64_t>(1, n / 3));
  for (uint64_t e = 0; e < n;) {
    uint64_t k = std::min(n - e, step(rng));
    out.push_back({e, k});
    e += k;
  }
}

}  // namespace

TEST(Fp8Quant, ReferenceMatchesTorchClampAndCastAtScaleOne) {
  auto x = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "x").as<float>();
  auto want = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "e4m3fn").bytes;
  ASSERT_EQ(x.size(), want.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(fp8_quantize_value(x[i], 1.0f), want[i]) << "x=" << x[i];
}

// Every CPU quantize loop this machine runs (portable, AVX-512) against the reference.
class Fp8Paths : public ::testing::TestWithParam<Fp8Path> {
 protected:
  // Codes of `in` (per-tensor, one scale) through the path under test, with the error terms.
  std::vector<uint8_t> quantize(DType dt, const std::vector<uint8_t>& in, float scale, Fp8ErrorStats* stats = nullptr) {
    const uint64_t n = in.size() / (dtype_bits(dt) / 8);
    std::vector<uint8_t> out(n, 0xAA);
    fp8_quantize_fast_on(GetParam(), Fp8Grid::per_tensor(1, n), dt, in.data(), 0, n, &scale, out.data(), stats);
    return out;
  }
};

TEST_P(Fp8Paths, ScaleOneMatchesTorchClampAndCast) {
  auto x = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "x").as<float>();
  auto want = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "e4m3fn").bytes;
  EXPECT_TRUE(quantize(DType::F32, f32_bytes(x), 1.0f) == want);
}

// Scales of every kind the quantizer stores: powers of two (the division exact, so x / scale hits
// every E4M3 tie), float32 scales with full mantissas, bf16- and f16-rounded ones, scales that
// put most of the inputs into E4M3's subnormal range or beyond ±448, and the smallest ones.
std::vector<float> scales_to_test() {
  std::vector<float> s = {1.0f, 0.0078125f, 3.0e-3f, 1.7f, 1e-30f, 1e30f, 448.0f / 3.0f,
                          std::numeric_limits<float>::denorm_min(), bf16_to_f32(1), f16_to_f32(1), 0x1p-133f};
  for (int e = -40; e <= 40; e += 3) s.push_back(std::ldexp(1.0f, e));
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-35, 15);
  for (int i = 0; i < 60; ++i) {
    const float amax = std::ldexp(mantissa(rng), exponent(rng));
    s.push_back(fp8_scale_for_amax(amax, i % 3 == 0 ? DType::F32 : i % 3 == 1 ? DType::BF16 : DType::F16));
  }
  return s;
}

TEST_P(Fp8Paths, Every16BitInputAtManyScales) {
  // Every finite bf16 and f16 pattern (NaN/Inf never reach the encoder).
  const std::vector<float> scales = scales_to_test();
  for (DType dt : {DType::BF16, DType::F16}) {
    std::vector<uint8_t> in;
    std::vector<float> vals;
    for (uint32_t h = 0; h < 65536; ++h) {
      float f = dt == DType::BF16 ? bf16_to_f32(static_cast<uint16_t>(h)) : f16_to_f32(static_cast<uint16_t>(h));
      if (!std::isfinite(f)) continue;
      in.push_back(static_cast<uint8_t>(h));
      in.push_back(static_cast<uint8_t>(h >> 8));
      vals.push_back(f);
    }
    for (float s : scales) {
      const std::vector<uint8_t> out = quantize(dt, in, s);
      for (size_t i = 0; i < vals.size(); ++i)
        ASSERT_EQ(out[i], fp8_quantize_value(vals[i], s)) << dtype_name(dt) << " x=" << vals[i] << " s=" << s;
    }
  }
}

TEST_P(Fp8Paths, F32TiesNeighboursAndRandomPatterns) {
  // At scale 1: every E4M3 value, tie and the floats beside them, and random float32 patterns.
  std::vector<float> t = e4m3_ties_and_neighbours();
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 1 << 20; ++i) {
    float f;
    uint32_t u = bits(rng);
    std::memcpy(&f, &u, 4);
    if (std::isfinite(f)) t.push_back(f);
  }
  std::vector<uint8_t> out = quantize(DType::F32, f32_bytes(t), 1.0f);
  for (size_t i = 0; i < t.size(); ++i) ASSERT_EQ(out[i], f32_to_e4m3fn(std::clamp(t[i], -448.0f, 448.0f))) << t[i];
  // At other scales: the ties and their neighbours multiplied back (x / scale lands on or within
  // an ulp or two of the tie), and random weights.
  std::normal_distribution<float> w(0.0f, 1.0f);
  for (float s : scales_to_test()) {
    std::vector<float> x;
    for (float v : e4m3_ties_and_neighbours())
      for (float y = v * s, k = 0; k < 3 && std::isfinite(y); ++k, y = std::nextafter(y, 0.0f)) x.push_back(y);
    for (int i = 0; i < 4096; ++i) x.push_back(w(rng) * s * 100);
    out = quantize(DType::F32, f32_bytes(x), s);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(out[i], fp8_quantize_value(x[i], s)) << x[i] << " s=" << s;
  }
}

TEST_P(Fp8Paths, ErrorTermsOfWholeVectorsAndTails) {
  // Lengths around the vector width and tile size: the codes, and error terms that count every
  // element once (zero padding adds nothing).
  std::mt19937 rng(9);
  std::normal_distribution<float> w(0.0f, 0.02f);
  for (uint64_t n : {1, 15, 16, 17, 31, 32, 33, 2047, 2048, 2049, 5000}) {
    std::vector<float> x(n);
    for (auto& v : x) v = w(rng);
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    const float s = fp8_scale_for_amax(amax, DType::F32);
    Fp8ErrorStats stats;
    const std::vector<uint8_t> out = quantize(DType::F32, f32_bytes(x), s, &stats);
    double se = 0, sw = 0, me = 0;
    for (uint64_t i = 0; i < n; ++i) {
      ASSERT_EQ(out[i], fp8_quantize_value(x[i], s)) << n << " " << i;
      const double err = x[i] - static_cast<double>(e4m3fn_to_f32(out[i])) * s;
      se += err * err, sw += static_cast<double>(x[i]) * x[i], me = std::max(me, std::fabs(err));
    }
    EXPECT_NEAR(stats.sum_sq_err, se, 1e-5 * se + 3e-7 * std::sqrt(se * sw)) << n;  // as below
    EXPECT_NEAR(stats.sum_sq, sw, 1e-5 * sw) << n;
    EXPECT_NEAR(stats.max_abs_err, me, 1e-5 * me) << n;
  }
}

TEST(Fp8Quant, TiesRoundToEven) {
  // 1.0625 is halfway between 1.0 (0x38) and 1.125 (0x39): even wins. 1.1875 -> 1.25 (0x3A).
  EXPECT_EQ(fp8_quantize_value(1.0625f, 1.0f), 0x38);
  EXPECT_EQ(fp8_quantize_value(1.1875f, 1.0f), 0x3A);
  EXPECT_EQ(fp8_quantize_value(-1.0625f, 1.0f), 0xB8);
  // Smallest subnormal tie: 2^-10 -> 0; 1.5 * 2^-9 -> 2^-8 (0x02).
  EXPECT_EQ(fp8_quantize_value(0.0009765625f, 1.0f), 0x00);
  EXPECT_EQ(fp8_quantize_value(0.0029296875f, 1.0f), 0x02);
  // Saturation, never NaN: 464 would round into the NaN code without the clamp.
  EXPECT_EQ(fp8_quantize_value(464.0f, 1.0f), 0x7E);
  EXPECT_EQ(fp8_quantize_value(-1e30f, 1.0f), 0xFE);
  EXPECT_EQ(fp8_quantize_value(896.0f, 2.0f), 0x7E);
}

TEST(Fp8Quant, ScalesAreRoundedToTheirStorageDtype) {
  EXPECT_EQ(fp8_scale_for_amax(0.0f, DType::F32), 1.0f);
  EXPECT_EQ(fp8_scale_for_amax(0.0f, DType::BF16), 1.0f);
  EXPECT_EQ(fp8_scale_for_amax(448.0f, DType::F32), 1.0f);
  const float amax = 0.1234567f;
  EXPECT_EQ(fp8_scale_for_amax(amax, DType::F32), amax / 448.0f);
  EXPECT_EQ(fp8_scale_for_amax(amax, DType::BF16), bf16_to_f32(f32_to_bf16(amax / 448.0f)));
  EXPECT_EQ(fp8_scale_for_amax(amax, DType::F16), f16_to_f32(f32_to_f16(amax / 448.0f)));
  // A scale that would round to 0 in f16 becomes the smallest f16 subnormal, 2^-24.
  EXPECT_EQ(fp8_scale_for_amax(1e-6f, DType::F16), f16_to_f32(1));
  EXPECT_EQ(fp8_scale_for_amax(1e-44f, DType::F32), std::numeric_limits<float>::denorm_min());
  uint8_t b[4];
  store_scale(fp8_scale_for_amax(amax, DType::BF16), DType::BF16, b);
  uint16_t h;
  std::memcpy(&h, b, 2);
  EXPECT_EQ(h, f32_to_bf16(amax / 448.0f));
  // The element that sets amax always lands on ±448 (the stored scale may be rounded down).
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(1e-4f, 1e4f);
  for (int i = 0; i < 100000; ++i) {
    float a = u(rng);
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      float s = fp8_scale_for_amax(a, dt);
      ASSERT_EQ(fp8_quantize_value(a, s), 0x7E) << a;
      ASSERT_EQ(fp8_quantize_value(-a, s), 0xFE) << a;
    }
  }
}

TEST_P(Fp8Paths, EqualsReferenceForEverySchemeAndChunking) {
  std::mt19937 rng(11);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const Case& c : cases()) {
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      const std::vector<float> w = weights(c, rng);
      const std::vector<uint8_t> in = encode(w, dt);
      const unsigned es = dtype_bits(dt) / 8;
      std::vector<float> ref_amax;
      ASSERT_TRUE(fp8_amax_reference(c.grid, dt, in.data(), ref_amax));
      split_ranges(c.grid.numel(), rng, ranges);
      std::vector<float> amax(c.grid.groups(), 0.0f);
      for (auto [e, k] : ranges) fp8_amax_fast_on(GetParam(), c.grid, dt, in.data() + es * e, e, k, amax.data());
      ASSERT_EQ(amax, ref_amax) << c.rows << "x" << c.cols << " block " << c.grid.block_rows << "x" << c.grid.block_cols;
      const bool zero_block = c.grid.groups() > 1;
      if (zero_block) {
        EXPECT_EQ(ref_amax[0], 0.0f);
      }
      for (DType sdt : {DType::F32, dt}) {
        std::vector<float> scales;
        for (float a : ref_amax) scales.push_back(fp8_scale_for_amax(a, sdt));
        if (zero_block) {
          EXPECT_EQ(scales[0], 1.0f);
        }
        std::vector<uint8_t> want(c.grid.numel()), got(c.grid.numel(), 0xAA);
        fp8_quantize_reference(c.grid, dt, in.data(), scales, want.data());
        Fp8ErrorStats stats;
        split_ranges(c.grid.numel(), rng, ranges);
        for (auto [e, k] : ranges)
          fp8_quantize_fast_on(GetParam(), c.grid, dt, in.data() + es * e, e, k, scales.data(), got.data() + e, &stats);
        ASSERT_EQ(got, want) << c.rows << "x" << c.cols << " block " << c.grid.block_rows << "x" << c.grid.block_cols
                             << " " << dtype_name(dt) << " scales " << dtype_name(sdt);
        // The error statistics, recomputed plainly.
        double se = 0, sw = 0, me = 0;
        for (uint64_t e = 0; e < c.grid.numel(); ++e) {
          double x = load_as_f32(in.data(), dt, e);
          double err = x - static_cast<double>(e4m3fn_to_f32(want[e])) * scales[c.grid.group_of(e)];
          se += err * err, sw += x * x, me = std::max(me, std::fabs(err));
        }
        // The fast path measures the error in the scaled domain (scale * (w / scale - q), which
        // drops the division's rounding, ~1e-7 |w|) and sums float32 terms within 2048-element
        // tiles: a report, so compared within a tolerance that scales with the weights.
        double wmax = 0;
        for (float a : ref_amax) wmax = std::max(wmax, static_cast<double>(a));
        // |w/scale*scale - w| <= 2^-24 |w| per element, so by Cauchy-Schwarz the sum moves by at
        // most ~2^-23 sqrt(se sw).
        EXPECT_NEAR(stats.sum_sq_err, se, 1e-5 * se + 3e-7 * std::sqrt(se * sw) + 1e-12 * sw);
        EXPECT_NEAR(stats.sum_sq, sw, 1e-5 * sw);
        EXPECT_NEAR(stats.max_abs_err, me, 2e-5 * me + 1e-7 * wmax);
      }
    }
  }
}

TEST_P(Fp8Paths, NonFiniteWeightsAreDetected) {
  // 4 x 300 in 2 x 150 blocks: a bad element first, last, in the middle of a vector or in a
  // block's ragged end.
  const Fp8Grid g = Fp8Grid::blocks(4, 300, 2, 150);
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
      for (uint64_t at : {0, 17, 149, 150, 299, 450, 1199}) {
        std::vector<float> w(g.numel(), 0.5f);
        w[at] = bad;
        auto in = encode(w, dt);
        std::vector<float> amax;
        EXPECT_FALSE(fp8_amax_reference(g, dt, in.data(), amax));
        std::vector<float> fast(g.groups(), 0.0f);
        fp8_amax_fast_on(GetParam(), g, dt, in.data(), 0, g.numel(), fast.data());
        for (uint64_t b = 0; b < g.groups(); ++b) {
          if (b == g.group_of(at)) EXPECT_TRUE(std::isinf(fast[b]) && fast[b] > 0) << at;
          else EXPECT_EQ(fast[b], 0.5f) << at;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ThisCpu, Fp8Paths, ::testing::ValuesIn(fp8_paths_on_this_cpu()),
                         [](const auto& info) { return std::string(fp8_path_name(info.param)); });
