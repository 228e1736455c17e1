#include "cast_patterns.h"

#include <random>

namespace ckpt::test {

std::vector<uint8_t> all_16bit_patterns() {
  std::vector<uint16_t> v(65536 + 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(i);
  return as_bytes(v);
}

std::vector<uint32_t> special_f32_patterns() {
  std::vector<uint32_t> m = {0, 1, 2, 3, 0x7FFFFF, 0x7FFFFE, 0x400000, 0x3FFFFF, 0x400001, 0x7FF000, 0x7FE000};
  for (int b = 0; b < 22; ++b)
    for (uint32_t above : {0u, 1u, 3u})
      for (int d = -1; d <= 1; ++d) m.push_back(((above << (b + 1)) | (1u << b)) + static_cast<uint32_t>(d));
  for (uint32_t hi : {0x0u, 0x1u, 0x3Fu, 0x40u, 0x7Eu, 0x7Fu})  // bf16 ties under each top mantissa
    for (uint32_t lo : {0x7FFFu, 0x8000u, 0x8001u}) m.push_back((hi << 16) | lo);
  for (uint32_t hi : {0x0u, 0x1u, 0x1FFu, 0x200u, 0x3FEu, 0x3FFu})  // f16 ties under each top mantissa
    for (uint32_t lo : {0xFFFu, 0x1000u, 0x1001u}) m.push_back((hi << 13) | lo);
  std::vector<uint32_t> out;
  for (uint32_t sign : {0u, 0x80000000u})
    for (uint32_t e = 0; e < 256; ++e)
      for (uint32_t mm : m) out.push_back(sign | (e << 23) | (mm & 0x7FFFFF));
  return out;
}

std::vector<uint32_t> random_f32_patterns(size_t n) {
  std::mt19937 rng(12345);
  std::vector<uint32_t> v(n);
  for (auto& x : v) x = rng();
  return v;
}

std::vector<uint64_t> f64_test_patterns() {
  std::vector<uint64_t> out;
  std::vector<uint64_t> exps;
  for (uint64_t e = 1023 - 160; e <= 1023 + 130; ++e) exps.push_back(e);
  for (uint64_t e : {0ull, 1ull, 2046ull, 2047ull}) exps.push_back(e);
  for (uint64_t sign : {0ull, 1ull << 63})
    for (uint64_t e : exps)
      for (int b = 0; b < 52; ++b)
        for (uint64_t above : {0ull, 1ull})
          for (int d = -1; d <= 1; ++d) {
            const uint64_t mm = (((above << (b + 1)) | (1ull << b)) + static_cast<uint64_t>(d)) & ((1ull << 52) - 1);
            out.push_back(sign | (e << 52) | mm);
          }
  std::mt19937_64 rng(777);
  for (int k = 0; k < 1'000'000; ++k) out.push_back(rng());
  // Random bits are mostly far outside the f32 range: add values inside it.
  std::uniform_int_distribution<uint64_t> exp(1023 - 150, 1023 + 129);
  for (int k = 0; k < 1'000'000; ++k) out.push_back((rng() & 0x800FFFFFFFFFFFFFull) | (exp(rng) << 52));
  return out;
}

}  // namespace ckpt::test
