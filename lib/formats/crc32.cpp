#include "formats/crc32.h"

#include <array>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ckpt {

namespace {

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kTable = make_table();

// The raw register update (no init/final inversion), shared by both paths.
uint32_t table_update(uint32_t reg, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) reg = kTable[(reg ^ p[i]) & 0xFF] ^ (reg >> 8);
  return reg;
}

#if defined(__x86_64__)
// Folding with carry-less multiplication (Gopal et al., "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ", Intel 2009), reflected form. Four 128-bit lanes are folded
// forward over 64-byte blocks, then folded into one lane. Instead of a Barrett reduction at the
// end, the remaining 128-bit lane is run through the table: it is congruent, as a message, to
// everything folded so far, so the table walk over its 16 bytes yields the same register.
// Constants are x^k mod P (bit-reflected, shifted left by one) for the fold distances used:
// 512±32 bits for the 4-lane fold and 128±32 for the single-lane fold.
#define CKPT_PCLMUL __attribute__((target("pclmul,sse4.1")))

CKPT_PCLMUL inline __m128i load(const uint8_t* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); }

// x * k folded forward and added to the next 128 bits of message.
CKPT_PCLMUL inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
  __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

CKPT_PCLMUL uint32_t fold_update(uint32_t reg, const uint8_t* p, size_t n) {
  const __m128i k512 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
  const __m128i k128 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(reg)));
  __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
  p += 64;
  n -= 64;
  while (n >= 64) {
    x0 = fold(x0, k512, load(p));
    x1 = fold(x1, k512, load(p + 16));
    x2 = fold(x2, k512, load(p + 32));
    x3 = fold(x3, k512, load(p + 48));
    p += 64;
    n -= 64;
  }
  x0 = fold(x0, k128, x1);
  x0 = fold(x0, k128, x2);
  x0 = fold(x0, k128, x3);
  while (n >= 16) {
    x0 = fold(x0, k128, load(p));
    p += 16;
    n -= 16;
  }
  alignas(16) uint8_t lane[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(lane), x0);
  return table_update(table_update(0, lane, 16), p, n);
}

bool cpu_has_pclmul() {
  static const bool has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return has;
}
#endif

}  // namespace

uint32_t crc32_reference(uint32_t crc, const uint8_t* data, size_t n) {
  return ~table_update(~crc, data, n);
}

uint32_t crc32(uint32_t crc, const uint8_t* data, size_t n) {
#if defined(__x86_64__)
  if (n >= 64 && cpu_has_pclmul()) return ~fold_update(~crc, data, n);
#endif
  return crc32_reference(crc, data, n);
}

bool crc32_has_fast_path() {
#if defined(__x86_64__)
  return cpu_has_pclmul();
#else
  return false;
#endif
}

}  // namespace ckpt
