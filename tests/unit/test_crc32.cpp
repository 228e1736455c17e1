// Every CRC-32 folding path (PCLMUL 128-bit lanes, VPCLMUL 512-bit registers, and crc32()'s
// dispatch over them) against the byte-at-a-time reference, on every length around the fold
// boundaries, every alignment, and running (chained) CRCs; crc32_combine against the CRC of
// concatenations.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "formats/crc32.h"

using ckpt::crc32;
using ckpt::crc32_combine;
using ckpt::crc32_reference;

namespace {

using CrcFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Lengths 0..1100 (every tail after the 64- and 256-byte loops, several loop counts), each at
// 16 alignments; longer ones with different starting CRCs.
void expect_matches_reference(CrcFn fn) {
  const std::vector<uint8_t> buf = random_bytes(8192 + 64, 42);
  for (size_t align = 0; align < 16; ++align)
    for (size_t n = 0; n <= 1100; ++n)
      ASSERT_EQ(fn(0, buf.data() + align, n), crc32_reference(0, buf.data() + align, n)) << n << " @" << align;
  for (size_t n : {2047u, 2048u, 2049u, 4095u, 4096u, 8191u, 8192u})
    for (uint32_t init : {0u, 0xFFFFFFFFu, 0x12345678u})
      ASSERT_EQ(fn(init, buf.data() + 3, n), crc32_reference(init, buf.data() + 3, n)) << n;
  const std::vector<uint8_t> zeros(4096, 0), ones(4096, 0xFF);
  EXPECT_EQ(fn(0, zeros.data(), zeros.size()), crc32_reference(0, zeros.data(), zeros.size()));
  EXPECT_EQ(fn(0, ones.data(), ones.size()), crc32_reference(0, ones.data(), ones.size()));
}

}  // namespace

TEST(Crc32, KnownVectors) {
  const char* s = "123456789";
  EXPECT_EQ(crc32_reference(0, reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  EXPECT_EQ(crc32(0, reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  EXPECT_EQ(crc32(0, nullptr, 0), 0u);
}

TEST(Crc32, DispatchMatchesReference) { expect_matches_reference(crc32); }

#if defined(__x86_64__)
TEST(Crc32, PclmulPathMatchesReference) {
  if (!ckpt::detail::cpu_has_pclmul()) GTEST_SKIP() << "no PCLMULQDQ on this CPU";
  expect_matches_reference(ckpt::detail::crc32_pclmul);
}

TEST(Crc32, VpclmulPathMatchesReference) {
  if (!ckpt::detail::cpu_has_vpclmul()) GTEST_SKIP() << "no AVX-512 VPCLMULQDQ on this CPU";
  expect_matches_reference(ckpt::detail::crc32_vpclmul);
}
#endif

TEST(Crc32, ChainingEqualsOneCall) {
  std::mt19937_64 rng(7);
  const std::vector<uint8_t> buf = random_bytes(1 << 20, 7);
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

TEST(Crc32, CombineEqualsTheCrcOfTheConcatenation) {
  std::mt19937_64 rng(11);
  const std::vector<uint8_t> buf = random_bytes(1 << 20, 11);
  auto crc_of = [&](size_t off, size_t n) { return crc32_reference(0, buf.data() + off, n); };
  // Every split of a short message, empty pieces included.
  for (size_t n = 0; n <= 300; ++n)
    for (size_t a = 0; a <= n; ++a)
      ASSERT_EQ(crc32_combine(crc_of(0, a), crc_of(a, n - a), n - a), crc_of(0, n)) << a << "+" << n - a;
  // Random splits of longer ones.
  for (int i = 0; i < 200; ++i) {
    const size_t n = rng() % buf.size(), a = rng() % (n + 1);
    ASSERT_EQ(crc32_combine(crc_of(0, a), crc_of(a, n - a), n - a), crc_of(0, n)) << a << "+" << n - a;
  }
  // A whole message from many pieces, combined left to right.
  uint32_t c = 0;
  for (size_t off = 0; off < buf.size();) {
    const size_t n = std::min<size_t>(buf.size() - off, rng() % 50000);
    c = crc32_combine(c, crc_of(off, n), n);
    off += n;
  }
  EXPECT_EQ(c, crc_of(0, buf.size()));
  // Lengths past 2^32 bytes, too long to hash here: combining is associative, (A||B)||C =
  // A||(B||C), which holds only if x^(8(|B|+|C|)) = x^(8|B|)·x^(8|C|) for the powers the table makes.
  for (int i = 0; i < 200; ++i) {
    const uint32_t a = static_cast<uint32_t>(rng()), b = static_cast<uint32_t>(rng()), c = static_cast<uint32_t>(rng());
    const uint64_t len_b = rng() >> (1 + i % 40), len_c = rng() >> (1 + i % 40);  // no overflow in the sum
    ASSERT_EQ(crc32_combine(crc32_combine(a, b, len_b), c, len_c), crc32_combine(a, crc32_combine(b, c, len_c), len_b + len_c))
        << len_b << " " << len_c;
  }
}
