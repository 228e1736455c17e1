#include "int4_cases.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "ops/float_convert.h"
#include "ops/int4_math.h"

namespace ckpt::test {

std::vector<float> normal_weight(uint64_t n, uint64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(n * k);
  for (float& v : w) v = nd(rng);
  return w;
}

using namespace ckpt::ops;

std::vector<uint8_t> encode_floats(const std::vector<float>& v, DType dt) {
  if (dt == DType::F32) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
  }
  std::vector<uint8_t> b(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = dt == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    std::memcpy(&b[2 * i], &h, 2);
  }
  return b;
}

std::vector<uint8_t> int4_hard_weight(uint64_t n, uint64_t k, uint64_t group, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(n * k);
  const uint64_t groups = k / group;
  for (uint64_t r = 0; r < n; ++r)
    for (uint64_t g = 0; g < groups; ++g) {
      float* x = &w[r * k + g * group];
      switch ((r * 7 + g * 3 + seed) % 8) {
        case 0:  // all zero (with a negative zero, which is still zero)
          for (uint64_t i = 0; i < group; ++i) x[i] = 0.0f;
          x[group / 2] = -0.0f;
          break;
        case 1: {  // exact ties: amax = 7.5 * 2^e, so S = 2^e, values m/2 * 2^e
          const float s = std::ldexp(1.0f, -6 - static_cast<int>(rng() % 4));
          for (uint64_t i = 0; i < group; ++i) x[i] = static_cast<float>(static_cast<int>(rng() % 31) - 15) * 0.5f * s;
          x[rng() % group] = 7.5f * s;
          break;
        }
        case 2:  // all positive (asymmetric zero 0)
          for (uint64_t i = 0; i < group; ++i) x[i] = std::fabs(normal(rng)) + 0.001f;
          break;
        case 3:  // an outlier
          for (uint64_t i = 0; i < group; ++i) x[i] = normal(rng);
          x[rng() % group] = 0.9f;
          break;
        case 4:  // tiny values (scales near the F16 subnormal range and below)
          for (uint64_t i = 0; i < group; ++i) x[i] = normal(rng) * 1e-6f;
          break;
        case 5: {  // asymmetric ties: lo = -3 * 2^e, hi = 12 * 2^e -> S = 2^e, odd zero 3
          const float s = std::ldexp(1.0f, -8);
          for (uint64_t i = 0; i < group; ++i) x[i] = static_cast<float>(static_cast<int>(rng() % 29) - 6) * 0.5f * s;
          x[0] = -3.0f * s;
          x[group - 1] = 12.0f * s;
          break;
        }
        case 6: {  // near ties against a scale that is no power of two: (j + 1/2)·S and its neighbours
          const float amax = 0.05f + 0.01f * static_cast<float>(rng() % 100);
          const float s = int4_sym_scale(amax, kInt4ScaleF16);
          for (uint64_t i = 0; i < group; ++i) {
            float v = (static_cast<float>(static_cast<int>(rng() % 15) - 7) + 0.5f) * s;
            for (uint32_t u = rng() % 3; u > 0; --u) v = std::nextafter(v, (rng() & 1) ? 1.0f : -1.0f);
            x[i] = v;
          }
          x[0] = amax;
          break;
        }
        default:
          for (uint64_t i = 0; i < group; ++i) x[i] = normal(rng);
      }
    }
  return encode_floats(w, dt);
}

Int4Arrays int4_reference_arrays(const Int4Scheme& s, DType dt, const std::vector<uint8_t>& w, uint64_t n, uint64_t k) {
  const Int4Geometry geo = int4_geometry(s, n, k);
  const uint64_t kw = (k + 7) / 8;
  Int4Arrays a;
  a.params.resize(n * geo.groups);
  std::vector<uint32_t> words(n * kw);
  const Int4Source src{w.data(), dt, k, 0, n, 0, k};
  if (Int4Issue i = int4_quantize_reference(s, geo, src, 0, k, a.params.data(), words.data(), kw, nullptr))
    ADD_FAILURE() << "reference quantization reported an issue at [" << i.row << ", " << i.col << "]";
  const Int4Shapes shapes = int4_shapes(s, n, k);
  auto numel = [](const std::vector<uint64_t>& sh) {
    uint64_t e = 1;
    for (uint64_t d : sh) e *= d;
    return sh.empty() ? 0 : e;
  };
  a.weights.resize(numel(shapes.weights));
  switch (s.format) {
    case Int4Format::kGptq: int4_words_to_gptq(words.data(), kw, n, kw, a.weights.data(), n); break;
    case Int4Format::kAwq: int4_words_to_awq(words.data(), kw, n, kw, a.weights.data(), n / 8); break;
    case Int4Format::kCompressedTensors: a.weights = words; break;
  }
  const Int4ParamsView v{a.params.data(), geo.groups, 0, n, 0, geo.groups};
  a.scales.resize(numel(shapes.scales) * (dtype_bits(s.scale_dtype) / 8));
  int4_store_scales(s, geo, v, a.scales.data());
  a.zeros.resize(numel(shapes.zeros));
  if (!a.zeros.empty()) int4_store_zeros(s, geo, v, a.zeros.data());
  a.g_idx.resize(numel(shapes.g_idx));
  if (!a.g_idx.empty()) int4_store_g_idx(geo, 0, k, a.g_idx.data());
  return a;
}

}  // namespace ckpt::test
