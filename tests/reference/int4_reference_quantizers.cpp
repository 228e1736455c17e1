#include "int4_reference_quantizers.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/float_convert.h"

namespace ckpt::test::refq {

using ops::bf16_to_f32;
using ops::f16_to_f32;
using ops::f32_to_bf16;
using ops::f32_to_f16;

namespace {

float h(float x) { return f16_to_f32(f32_to_f16(x)); }   // a float16 tensor op's result
float b(float x) { return bf16_to_f32(f32_to_bf16(x)); }  // a bfloat16 tensor op's result

void fill_dequant(Packed& p, int64_t n, int64_t k, int64_t group) {
  const int64_t G = k / group;
  p.dequant.resize(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = r * G + c / group;
      p.dequant[r * k + c] = static_cast<float>(static_cast<int>(p.codes[r * k + c]) - static_cast<int>(p.zero[g])) * p.scale[g];
    }
}

}  // namespace

Packed gptqmodel_quantize(const std::vector<float>& w, int64_t n, int64_t k, int64_t group, bool sym) {
  const int64_t G = k / group;
  Packed p;
  p.codes.resize(static_cast<size_t>(n * k));
  p.zero.resize(static_cast<size_t>(n * G));
  p.scale.resize(static_cast<size_t>(n * G));
  std::vector<float> scale32(static_cast<size_t>(n * G));
  std::vector<int64_t> zero(static_cast<size_t>(n * G));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < G; ++g) {
      const float* x = &w[r * k + g * group];
      float xmin = std::min(0.0f, *std::min_element(x, x + group));
      float xmax = std::max(0.0f, *std::max_element(x, x + group));
      if (sym) {
        xmax = std::max(std::fabs(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
      }
      if (xmin == 0 && xmax == 0) {
        xmin = -1;
        xmax = 1;
      }
      const float scale = (xmax - xmin) / 15.0f;
      const float z = sym ? 8.0f : std::nearbyint(-xmin / scale);
      scale32[r * G + g] = scale;
      zero[r * G + g] = static_cast<int64_t>(z);
      for (int64_t c = 0; c < group; ++c) {
        const float q = std::clamp(std::nearbyint(x[c] / scale) + z, 0.0f, 15.0f);
        p.codes[r * k + g * group + c] = static_cast<uint8_t>(q);
      }
      // The checkpoint keeps float16 scales and v1 zeros (stored zero - 1); v1 readers add 1.
      p.scale[r * G + g] = h(scale);
      p.zero[r * G + g] = static_cast<uint8_t>(((z - 1.0f) < 0 ? 15 : static_cast<int>(z) - 1) + 1);
    }
  p.weights.assign(static_cast<size_t>(k / 8 * n), 0);
  for (int64_t row = 0; row < k / 8; ++row)
    for (int64_t j = 0; j < 8; ++j)
      for (int64_t col = 0; col < n; ++col)
        p.weights[row * n + col] |= static_cast<uint32_t>(p.codes[col * k + row * 8 + j]) << (4 * j);
  p.zeros.assign(static_cast<size_t>(G * n / 8), 0);
  for (int64_t col = 0; col < n / 8; ++col)
    for (int64_t j = 0; j < 8; ++j)
      for (int64_t g = 0; g < G; ++g)
        p.zeros[g * (n / 8) + col] |= static_cast<uint32_t>((zero[(col * 8 + j) * G + g] - 1) & 15) << (4 * j);
  p.scales.resize(static_cast<size_t>(G * n));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t col = 0; col < n; ++col) p.scales[g * n + col] = f32_to_f16(scale32[col * G + g]);
  fill_dequant(p, n, k, group);
  return p;
}

Packed autoawq_quantize(const std::vector<float>& w, int64_t n, int64_t k, int64_t group) {
  const int64_t G = k / group;
  static constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  Packed p;
  p.codes.resize(static_cast<size_t>(n * k));
  p.zero.resize(static_cast<size_t>(n * G));
  p.scale.resize(static_cast<size_t>(n * G));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < G; ++g) {
      const float* x = &w[r * k + g * group];
      const float mx = *std::max_element(x, x + group), mn = *std::min_element(x, x + group);
      const float s = h(std::max(h(mx - mn), h(1e-5f)) / 15.0f);
      const float z = std::clamp(-std::nearbyint(h(mn / s)), 0.0f, 15.0f);
      p.scale[r * G + g] = s;
      p.zero[r * G + g] = static_cast<uint8_t>(z);
      for (int64_t c = 0; c < group; ++c)
        p.codes[r * k + g * group + c] = static_cast<uint8_t>(std::clamp(std::nearbyint(h(x[c] / s)) + z, 0.0f, 15.0f));
    }
  p.weights.assign(static_cast<size_t>(k * (n / 8)), 0);
  for (int64_t col = 0; col < n / 8; ++col)
    for (int i = 0; i < 8; ++i)
      for (int64_t kk = 0; kk < k; ++kk)
        p.weights[kk * (n / 8) + col] |= static_cast<uint32_t>(p.codes[(col * 8 + kOrder[i]) * k + kk]) << (4 * i);
  p.zeros.assign(static_cast<size_t>(G * (n / 8)), 0);
  for (int64_t col = 0; col < n / 8; ++col)
    for (int i = 0; i < 8; ++i)
      for (int64_t g = 0; g < G; ++g)
        p.zeros[g * (n / 8) + col] |= static_cast<uint32_t>(p.zero[(col * 8 + kOrder[i]) * G + g]) << (4 * i);
  p.scales.resize(static_cast<size_t>(G * n));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t col = 0; col < n; ++col) p.scales[g * n + col] = f32_to_f16(p.scale[col * G + g]);
  fill_dequant(p, n, k, group);
  return p;
}

Packed compressed_tensors_quantize(const std::vector<float>& w, int64_t n, int64_t k, int64_t group, bool sym) {
  const int64_t G = k / group;
  Packed p;
  p.codes.resize(static_cast<size_t>(n * k));
  p.zero.resize(static_cast<size_t>(n * G));
  p.scale.resize(static_cast<size_t>(n * G));
  std::vector<int> zp(static_cast<size_t>(n * G));
  const float eps = 0.0078125f;  // torch.finfo(bfloat16).eps
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < G; ++g) {
      const float* x = &w[r * k + g * group];
      const float mn = std::min(0.0f, *std::min_element(x, x + group));
      const float mx = std::max(0.0f, *std::max_element(x, x + group));
      float s;
      float z = 0;
      if (sym) {
        s = b(std::max(std::fabs(mn), std::fabs(mx)) / 7.5f);
      } else {
        s = b(b(mx - mn) / 15.0f);
        z = b(-8.0f - b(mn / s));  // NaN for an all-zero group
        z = std::isnan(z) ? 0.0f : std::clamp(z, -8.0f, 7.0f);
        z = std::nearbyint(z);
      }
      if (s == 0) s = eps;
      zp[r * G + g] = static_cast<int>(z);
      p.scale[r * G + g] = s;
      p.zero[r * G + g] = static_cast<uint8_t>(static_cast<int>(z) + 8);
      for (int64_t c = 0; c < group; ++c) {
        float v = b(x[c] / s);
        if (!sym) v = b(v + z);
        const int q = static_cast<int>(std::nearbyint(std::clamp(v, -8.0f, 7.0f)));
        p.codes[r * k + g * group + c] = static_cast<uint8_t>(q + 8);
      }
    }
  // pack_to_int32: element i of a row in bits 4 (i % 8) of word i / 8.
  const int64_t kw = (k + 7) / 8;
  p.weights.assign(static_cast<size_t>(n * kw), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) p.weights[r * kw + c / 8] |= static_cast<uint32_t>(p.codes[r * k + c]) << (4 * (c % 8));
  if (!sym) {  // packed_dim = 0: along N
    const int64_t nw = (n + 7) / 8;
    p.zeros.assign(static_cast<size_t>(nw * G), 0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < G; ++g)
        p.zeros[(r / 8) * G + g] |= static_cast<uint32_t>(zp[r * G + g] + 8) << (4 * (r % 8));
  }
  p.scales.resize(static_cast<size_t>(n * G));
  for (int64_t i = 0; i < n * G; ++i) p.scales[i] = f32_to_bf16(p.scale[i]);
  fill_dequant(p, n, k, group);
  return p;
}

}  // namespace ckpt::test::refq
