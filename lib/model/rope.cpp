#include "model/rope.h"

#include <cmath>
#include <numbers>
#include <stdexcept>

namespace ckpt::model {

std::vector<double> rope_inv_freq(const RopeConfig& rope) {
  const uint64_t dim = rope.rotary_dim;
  std::vector<double> inv(dim / 2);
  // default: 1 / theta^(2i / dim)
  for (uint64_t i = 0; i < dim / 2; ++i)
    inv[i] = 1.0 / std::pow(rope.theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  switch (rope.type) {
    case RopeType::kDefault: break;
    case RopeType::kLinear:
      for (double& f : inv) f /= rope.factor;
      break;
    case RopeType::kLlama3: {
      // Long wavelengths are divided by factor, short ones kept, the band between interpolated.
      const double old_len = static_cast<double>(rope.original_max_position);
      const double low_wavelen = old_len / rope.low_freq_factor;
      const double high_wavelen = old_len / rope.high_freq_factor;
      for (double& f : inv) {
        const double wavelen = 2 * std::numbers::pi / f;
        if (wavelen < high_wavelen) continue;
        if (wavelen > low_wavelen) {
          f /= rope.factor;
          continue;
        }
        const double smooth = (old_len / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
        f = (1 - smooth) * f / rope.factor + smooth * f;
      }
      break;
    }
  }
  return inv;
}

RopeTable rope_table(const RopeConfig& rope, uint64_t positions) {
  const std::vector<double> inv = rope_inv_freq(rope);
  RopeTable t;
  t.half = inv.size();
  t.cos.resize(positions * t.half);
  t.sin.resize(positions * t.half);
  for (uint64_t p = 0; p < positions; ++p)
    for (uint64_t i = 0; i < t.half; ++i) {
      const double angle = static_cast<double>(p) * inv[i];
      t.cos[p * t.half + i] = std::cos(angle);
      t.sin[p * t.half + i] = std::sin(angle);
    }
  return t;
}

void apply_rope(double* head, uint64_t position, const RopeTable& table) {
  const uint64_t half = table.half;
  if ((position + 1) * half > table.cos.size()) throw std::logic_error("apply_rope: position beyond the table");
  const double* c = table.cos.data() + position * half;
  const double* s = table.sin.data() + position * half;
  for (uint64_t i = 0; i < half; ++i) {
    const double x1 = head[i], x2 = head[i + half];
    // q * cos + rotate_half(q) * sin, rotate_half(q) = (-q2, q1)
    head[i] = x1 * c[i] - x2 * s[i];
    head[i + half] = x2 * c[i] + x1 * s[i];
  }
}

}  // namespace ckpt::model
