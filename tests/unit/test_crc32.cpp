// The fast CRC-32 (PCLMUL folding) against the byte-at-a-time reference, on every length around
// the fold boundaries, every alignment, and running (chained) CRCs.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "formats/crc32.h"

using ckpt::crc32;
using ckpt::crc32_reference;

TEST(Crc32, KnownVectors) {
  const char* s = "123456789";
  EXPECT_EQ(crc32_reference(0, reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  EXPECT_EQ(crc32(0, reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  EXPECT_EQ(crc32(0, nullptr, 0), 0u);
  std::vector<uint8_t> zeros(4096, 0);
  EXPECT_EQ(crc32(0, zeros.data(), zeros.size()), crc32_reference(0, zeros.data(), zeros.size()));
}

TEST(Crc32, FastPathMatchesReferenceOnEveryLengthAndAlignment) {
  if (!ckpt::crc32_has_fast_path()) GTEST_SKIP() << "no PCLMULQDQ on this CPU: crc32() is the reference";
  std::mt19937_64 rng(42);
  std::vector<uint8_t> buf(4096 + 64);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 16; ++align)
    for (size_t n = 0; n <= 600; ++n)
      ASSERT_EQ(crc32(0, buf.data() + align, n), crc32_reference(0, buf.data() + align, n)) << n << " @" << align;
  for (size_t n : {1000u, 1023u, 1024u, 4095u, 4096u})
    for (uint32_t init : {0u, 0xFFFFFFFFu, 0x12345678u})
      ASSERT_EQ(crc32(init, buf.data() + 3, n), crc32_reference(init, buf.data() + 3, n)) << n;
}

TEST(Crc32, ChainingEqualsOneCall) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf(1 << 20);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const uint32_t whole = crc32_reference(0, buf.data(), buf.size());
  EXPECT_EQ(crc32(0, buf.data(), buf.size()), whole);
  uint32_t c = 0;
  for (size_t off = 0; off < buf.size();) {
    size_t n = std::min<size_t>(buf.size() - off, 1 + rng() % 70000);
    c = crc32(c, buf.data() + off, n);
    off += n;
  }
  EXPECT_EQ(c, whole);
}
