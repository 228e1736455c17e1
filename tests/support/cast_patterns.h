// Input bit patterns for the cast tests (CPU paths and the CUDA kernel): every 16-bit pattern,
// every f32 exponent with its rounding edges and ties at every bit position, random f32 bits, and
// f64 edges around the f32 range plus random bits.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace ckpt::test {

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// All 2^16 patterns in order, plus 5 more so vector loops end in a scalar tail.
std::vector<uint8_t> all_16bit_patterns();
// Both signs, every exponent, mantissas at the edges, and at every bit position b the exact tie
// (bit b alone below b+1) and its neighbours with the bit above odd and even: every rounding
// boundary of every narrower format, subnormal targets included.
std::vector<uint32_t> special_f32_patterns();
// n random f32 bit patterns (fixed seed).
std::vector<uint32_t> random_f32_patterns(size_t n);
// Ties and neighbours at every bit position for exponents around the f32 range and the
// extremes, then 10^6 random patterns and 10^6 random values inside the f32 range.
std::vector<uint64_t> f64_test_patterns();

}  // namespace ckpt::test
