// The synthetic checkpoints' weight values (tests/bench/make_synthetic.cpp writes them,
// ckpt_bench_pack codes their planes): element i of a tensor seeded `seed` is a sum of four
// uniforms in [-0.5, 0.5) from a splitmix64 hash of i — close enough to a normal, scaled to std
// ~0.02 — so any range of any tensor is made without the rest.
#pragma once

#include <cstdint>

namespace ckpt::bench {

inline float synthetic_weight(uint64_t i, uint64_t seed) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  float s = 0;
  for (int k = 0; k < 4; ++k) s += static_cast<float>((x >> (16 * k)) & 0xFFFF) / 65536.0f - 0.5f;
  return s * 0.07f;
}

}  // namespace ckpt::bench
