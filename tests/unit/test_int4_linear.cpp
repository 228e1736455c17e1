// model::int4_linear: an INT4 Linear held as its format's arrays (GPTQ v1/v2, AWQ,
// compressed-tensors, act-order g_idx) decodes, through ops::int4_decode, to the values RTN
// quantized it to; hands its stored form to the CUDA runtime; refuses arrays of the wrong size and
// g_idx values outside the groups.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "calib/calibrate.h"
#include "calib/gptq.h"
#include "core/error.h"
#include "int4_cases.h"
#include "model/linear.h"

namespace ckpt {
namespace {

calib::Int4Weights rtn(const ops::Int4Scheme& s, uint64_t n, uint64_t k) {
  const std::vector<float> w = test::normal_weight(n, k, 3);
  calib::Int4Weights q;
  EXPECT_FALSE(calib::rtn_int4(s, w.data(), n, k, &q));
  return q;
}

std::unique_ptr<model::LinearWeights> linear_of(const calib::Int4Weights& q, std::vector<uint8_t> g_idx = {}) {
  const ops::Int4Shapes sh = ops::int4_shapes(q.scheme, q.geo.n, q.geo.k);
  std::vector<uint8_t> zeros;
  if (!sh.zeros.empty()) zeros = calib::int4_array(q, quant::PartRole::kZero);
  if (g_idx.empty() && !sh.g_idx.empty()) g_idx = calib::int4_array(q, quant::PartRole::kGroupIndex);
  return model::int4_linear(q.scheme, q.geo.n, q.geo.k, calib::int4_array(q, quant::PartRole::kCodes),
                            std::move(zeros), calib::int4_array(q, quant::PartRole::kScale), std::move(g_idx));
}

TEST(Int4Linear, EveryFormatDecodesToTheQuantizedValues) {
  const uint64_t n = 16, k = 128;
  // Not GPTQ v1 asymmetric: v1 cannot hold a zero of 0 (it reads back as 16, ops/int4_quant.h).
  using F = ops::Int4Format;
  const std::vector<ops::Int4Scheme> schemes = {
      {.format = F::kGptq, .group_size = 32, .symmetric = true},
      {.format = F::kGptq, .group_size = 64, .symmetric = false, .gptq_zero_offset = 0},
      {.format = F::kAwq, .group_size = 32, .symmetric = false},
      {.format = F::kCompressedTensors, .group_size = 128, .symmetric = true, .scale_dtype = DType::BF16},
      {.format = F::kCompressedTensors, .group_size = -1, .symmetric = false, .scale_dtype = DType::BF16}};
  for (const ops::Int4Scheme& s : schemes) {
    const calib::Int4Weights q = rtn(s, n, k);
    const auto w = linear_of(q);
    EXPECT_EQ(w->kind(), model::WeightKind::kInt4);
    EXPECT_EQ(w->out_features(), n);
    EXPECT_EQ(w->in_features(), k);
    const std::optional<model::StoredForm> form = w->stored_form();
    ASSERT_TRUE(form && form->int4) << w->format();
    EXPECT_EQ(form->int4->geo.groups, q.geo.groups);
    std::vector<double> rows(n * k);
    w->dequantize_rows(0, n, rows.data());
    for (uint64_t i = 0; i < n * k; ++i)
      ASSERT_NEAR(rows[i], q.dequantized[i], 1e-6 * std::fabs(q.dequantized[i])) << w->format() << " element " << i;
  }
}

TEST(Int4Linear, ActOrderGroupIndexIsHonoured) {
  const ops::Int4Scheme s{.format = ops::Int4Format::kGptq, .group_size = 32, .symmetric = true, .gptq_zero_offset = 0};
  const calib::Int4Weights q = rtn(s, 8, 64);
  std::vector<int32_t> g(64);
  for (uint64_t c = 0; c < 64; ++c) g[c] = static_cast<int32_t>(c % 2);  // columns alternate between groups 0 and 1
  std::vector<uint8_t> bytes(g.size() * 4);
  std::memcpy(bytes.data(), g.data(), bytes.size());
  const auto w = linear_of(q, bytes);
  std::vector<double> rows(8 * 64);
  w->dequantize_rows(0, 8, rows.data());
  for (uint64_t r = 0; r < 8; ++r)
    for (uint64_t c = 0; c < 64; ++c) {
      const ops::Int4Params& p = q.params[r * q.geo.groups + c % 2];
      const double want = (double(q.codes[r * 64 + c]) - double(p.zero)) * p.scale;
      ASSERT_NEAR(rows[r * 64 + c], want, 1e-6 * std::fabs(want)) << r << ", " << c;
    }
}

TEST(Int4Linear, RefusesWrongArrays) {
  const ops::Int4Scheme s{.format = ops::Int4Format::kGptq, .group_size = 32, .symmetric = true};
  const calib::Int4Weights q = rtn(s, 8, 64);
  auto codes = calib::int4_array(q, quant::PartRole::kCodes);
  auto zeros = calib::int4_array(q, quant::PartRole::kZero);
  auto scales = calib::int4_array(q, quant::PartRole::kScale);
  auto short_codes = codes;
  short_codes.resize(codes.size() - 4);
  EXPECT_THROW(model::int4_linear(s, 8, 64, short_codes, zeros, scales, {}), Error);
  std::vector<uint8_t> bad(64 * 4, 0);
  bad[4 * 10] = 2;  // group 2 of 2
  EXPECT_THROW(model::int4_linear(s, 8, 64, codes, zeros, scales, bad), Error);
  EXPECT_THROW(model::int4_linear(s, 8, 60, codes, zeros, scales, {}), Error);  // K % G
}

}  // namespace
}  // namespace ckpt
