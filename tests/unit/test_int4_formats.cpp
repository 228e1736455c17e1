// Our INT4 packers and decoders against the reference tools' own numerics and packings
// (tests/reference/int4_reference_quantizers.h: GPTQModel/AutoGPTQ, AutoAWQ, compressed-tensors):
//  - decoding their stored arrays gives their codes, zeros, scales and dequantized values;
//  - given their codes, zeros and scales, our packers write their bytes exactly;
//  - where our numerics differ from theirs (ops/int4_quant.h lists why), how often, measured on
//    a weight with every hard case.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "int4_cases.h"
#include "int4_reference_quantizers.h"
#include "ops/float_convert.h"
#include "ops/int4_quant.h"

using namespace ckpt;
using namespace ckpt::ops;
namespace refq = ckpt::test::refq;

namespace {

std::vector<float> as_floats(const std::vector<uint8_t>& bytes, DType dt) {
  std::vector<float> v(bytes.size() / (dtype_bits(dt) / 8));
  for (size_t i = 0; i < v.size(); ++i) v[i] = load_as_f32(bytes.data(), dt, i);
  return v;
}

// Decodes `p` with our unpack/decode and checks every value; then repacks its codes, zeros and
// scales with our packers and checks the bytes.
void check_format(const Int4Scheme& s, const refq::Packed& p, uint64_t n, uint64_t k) {
  const Int4Geometry geo = int4_geometry(s, n, k);
  const std::string what = std::string(int4_format_name(s.format)) + (s.symmetric ? " sym" : " asym") + " g" +
                           std::to_string(s.group_size);
  const Int4Stored st{p.weights.data(), p.zeros.empty() ? nullptr : p.zeros.data(),
                      reinterpret_cast<const uint8_t*>(p.scales.data()), nullptr};
  std::vector<uint8_t> codes(n * k), zeros(n * geo.groups);
  std::vector<float> scales(n * geo.groups), deq(n * k);
  int4_unpack(s, geo, st, 0, n, codes.data(), zeros.data(), scales.data());
  ASSERT_TRUE(int4_decode(s, geo, st, 0, n, deq.data()));
  EXPECT_EQ(codes, p.codes) << what;
  EXPECT_EQ(zeros, p.zero) << what;
  EXPECT_EQ(scales, p.scale) << what;
  EXPECT_EQ(deq, p.dequant) << what;

  // Our packers, fed their codes / zeros / scales.
  const uint64_t kw = (k + 7) / 8;
  std::vector<uint32_t> words(n * kw, 0);
  for (uint64_t r = 0; r < n; ++r)
    for (uint64_t c = 0; c < k; ++c) words[r * kw + c / 8] |= static_cast<uint32_t>(p.codes[r * k + c]) << (4 * (c % 8));
  std::vector<uint32_t> weights(p.weights.size());
  switch (s.format) {
    case Int4Format::kGptq: int4_words_to_gptq(words.data(), kw, n, kw, weights.data(), n); break;
    case Int4Format::kAwq: int4_words_to_awq(words.data(), kw, n, kw, weights.data(), n / 8); break;
    case Int4Format::kCompressedTensors: weights = words; break;
  }
  EXPECT_EQ(weights, p.weights) << what << " weights";
  std::vector<Int4Params> params(n * geo.groups);
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].scale = p.scale[i];
    // GPTQ: the readers' zero (stored + 1); ours stores zero - offset.
    params[i].zero = static_cast<uint8_t>(p.zero[i] & 15);
  }
  const Int4ParamsView v{params.data(), geo.groups, 0, n, 0, geo.groups};
  std::vector<uint8_t> sc(p.scales.size() * 2);
  int4_store_scales(s, geo, v, sc.data());
  EXPECT_EQ(std::memcmp(sc.data(), p.scales.data(), sc.size()), 0) << what << " scales";
  if (!p.zeros.empty()) {
    std::vector<uint32_t> z(p.zeros.size());
    int4_store_zeros(s, geo, v, z.data());
    EXPECT_EQ(z, p.zeros) << what << " zeros";
  }
}

// Fraction of codes where ours differs from the reference tool's.
double code_disagreement(const Int4Scheme& s, DType dt, const std::vector<uint8_t>& w, const refq::Packed& p,
                         uint64_t n, uint64_t k) {
  const auto ours = test::int4_reference_arrays(s, dt, w, n, k);
  const Int4Geometry geo = int4_geometry(s, n, k);
  const Int4Stored st{ours.weights.data(), ours.zeros.empty() ? nullptr : ours.zeros.data(), ours.scales.data(),
                      nullptr};
  std::vector<uint8_t> codes(n * k), zeros(n * geo.groups);
  std::vector<float> scales(n * geo.groups);
  int4_unpack(s, geo, st, 0, n, codes.data(), zeros.data(), scales.data());
  size_t diff = 0;
  for (size_t i = 0; i < codes.size(); ++i) diff += codes[i] != p.codes[i];
  return static_cast<double>(diff) / static_cast<double>(codes.size());
}

}  // namespace

TEST(Int4Formats, GptqModelPackingDecodesAndRepacks) {
  const uint64_t n = 32, k = 256;
  for (bool sym : {true, false})
    for (int64_t group : {32, 128}) {
      const auto w = test::int4_hard_weight(n, k, static_cast<uint64_t>(group), DType::BF16, 21);
      const auto p = refq::gptqmodel_quantize(as_floats(w, DType::BF16), n, k, group, sym);
      check_format(Int4Scheme{Int4Format::kGptq, group, sym, DType::F16, 1}, p, n, k);
    }
}

TEST(Int4Formats, AutoAwqPackingDecodesAndRepacks) {
  const uint64_t n = 32, k = 256;
  for (int64_t group : {32, 128}) {
    const auto w = test::int4_hard_weight(n, k, static_cast<uint64_t>(group), DType::F16, 22);
    const auto p = refq::autoawq_quantize(as_floats(w, DType::F16), n, k, group);
    check_format(Int4Scheme{Int4Format::kAwq, group, false, DType::F16}, p, n, k);
  }
}

TEST(Int4Formats, CompressedTensorsPackingDecodesAndRepacks) {
  const uint64_t n = 32, k = 256;
  for (bool sym : {true, false})
    for (int64_t group : {32, 128}) {
      const auto w = test::int4_hard_weight(n, k, static_cast<uint64_t>(group), DType::BF16, 23);
      const auto p = refq::compressed_tensors_quantize(as_floats(w, DType::BF16), n, k, group, sym);
      check_format(Int4Scheme{Int4Format::kCompressedTensors, group, sym, DType::BF16}, p, n, k);
    }
}

TEST(Int4Formats, WhereOurCodesDifferFromEachReference) {
  // On ordinary weights (normal, every group holding both signs) the tools agree with us except
  // where their arithmetic rounds differently: compressed-tensors computes x / S (+ z) in BF16
  // before the integer rounding, GPTQModel divides by the float32 scale, AutoAWQ works in float16.
  // (The designed cases of int4_hard_weight show the documented differences instead: exact ties
  // with odd zeros for compressed-tensors asym, absmax / 15 for GPTQModel's non-negative groups.)
  const uint64_t n = 64, k = 1024;
  std::mt19937 rng(25);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(n * k);
  for (auto& x : v) x = normal(rng);
  const auto wb = test::encode_floats(v, DType::BF16), wh = test::encode_floats(v, DType::F16);
  const auto fb = as_floats(wb, DType::BF16), fh = as_floats(wh, DType::F16);
  const double ct_sym = code_disagreement(Int4Scheme{Int4Format::kCompressedTensors, 128, true, DType::BF16},
                                          DType::BF16, wb, refq::compressed_tensors_quantize(fb, n, k, 128, true), n, k);
  const double ct_asym = code_disagreement(Int4Scheme{Int4Format::kCompressedTensors, 128, false, DType::BF16},
                                           DType::BF16, wb, refq::compressed_tensors_quantize(fb, n, k, 128, false), n, k);
  const double gptq = code_disagreement(Int4Scheme{Int4Format::kGptq, 128, true, DType::F16}, DType::BF16, wb,
                                        refq::gptqmodel_quantize(fb, n, k, 128, true), n, k);
  const double awq = code_disagreement(Int4Scheme{Int4Format::kAwq, 128, false, DType::F16}, DType::F16, wh,
                                       refq::autoawq_quantize(fh, n, k, 128), n, k);
  std::printf("codes differing from: compressed-tensors sym %.5f asym %.5f, GPTQModel %.5f, AutoAWQ %.5f\n", ct_sym,
              ct_asym, gptq, awq);
  EXPECT_LT(ct_sym, 0.01);
  // compressed-tensors also rounds the range hi - lo to BF16 before dividing by 15: its
  // asymmetric scale is one BF16 unit away from ours in about a quarter of the groups here.
  EXPECT_LT(ct_asym, 0.05);
  EXPECT_LT(gptq, 0.01);
  EXPECT_LT(awq, 0.01);
}
