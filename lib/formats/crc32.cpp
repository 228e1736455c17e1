#include "formats/crc32.h"

#include <array>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ckpt {

namespace {

constexpr uint32_t kPoly = 0xEDB88320u;

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kTable = make_table();

// The raw register update (no init/final inversion), shared by every path.
uint32_t table_update(uint32_t reg, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) reg = kTable[(reg ^ p[i]) & 0xFF] ^ (reg >> 8);
  return reg;
}

// Arithmetic on polynomials over GF(2) modulo P, in the reflected form the register holds: bit 31
// is the coefficient of x^0, bit 0 that of x^31. The register update is linear: feeding n bits
// multiplies what the register held by x^n (mod P) and adds the message's own term, so both the
// folding constants and crc32_combine are powers of x mod P.
constexpr uint32_t kOne = 0x80000000u;

constexpr uint32_t times_x(uint32_t a) { return (a & 1) ? (a >> 1) ^ kPoly : a >> 1; }

constexpr uint32_t multiply_mod_p(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = kOne; bit != 0; bit >>= 1) {  // a's terms x^0, x^1, ... times b·x^0, b·x^1, ...
    if (a & bit) product ^= b;
    b = times_x(b);
  }
  return product;
}

// x^(2^k) mod P by repeated squaring; k up to 66 covers x^(8n) for every 64-bit byte count n.
constexpr std::array<uint32_t, 67> kXPow2 = [] {
  std::array<uint32_t, 67> t{};
  t[0] = kOne >> 1;  // x^1
  for (size_t k = 1; k < t.size(); ++k) t[k] = multiply_mod_p(t[k - 1], t[k - 1]);
  return t;
}();

// x^(n·2^shift) mod P: the product of x^(2^(k+shift)) over the bits k set in n.
constexpr uint32_t x_pow_mod_p(uint64_t n, unsigned shift = 0) {
  uint32_t r = kOne;
  for (unsigned k = 0; n != 0; ++k, n >>= 1)
    if (n & 1) r = multiply_mod_p(r, kXPow2[k + shift]);
  return r;
}

#if defined(__x86_64__)
// Folding with carry-less multiplication (Gopal et al., "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ", Intel 2009), reflected form. Lanes of 128 bits are folded
// forward over the message (each lane's 128 bits multiplied by x^distance and added to the
// lane's bits `distance` further on), then into one lane. Instead of a Barrett reduction at the
// end, the remaining 128-bit lane is run through the table: it is congruent, as a message, to
// everything folded so far, so the table walk over its 16 bytes yields the same register.
//
// A lane's low 64 bits are multiplied by x^(distance+32) mod P, its high 64 bits by
// x^(distance-32) mod P; in the reflected 64-bit operand of PCLMULQDQ each is the register form
// shifted left by one.
struct FoldConstants {
  uint64_t low, high;
};
constexpr FoldConstants fold_constants(unsigned distance) {
  return {uint64_t{x_pow_mod_p(distance + 32)} << 1, uint64_t{x_pow_mod_p(distance - 32)} << 1};
}
constexpr FoldConstants kFold128 = fold_constants(128), kFold512 = fold_constants(512),
                        kFold2048 = fold_constants(2048);
// The published values (Intel's paper; Linux crc32-pclmul) for the two distances they list.
static_assert(kFold512.low == 0x154442bd4 && kFold512.high == 0x1c6e41596);
static_assert(kFold128.low == 0x1751997d0 && kFold128.high == 0x0ccaa009e);

#define CKPT_PCLMUL __attribute__((target("pclmul,sse4.1")))
#define CKPT_VPCLMUL __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.1")))

CKPT_PCLMUL inline __m128i load128(const uint8_t* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); }
CKPT_PCLMUL inline __m128i constants128(FoldConstants k) {
  return _mm_set_epi64x(static_cast<long long>(k.high), static_cast<long long>(k.low));
}

// x * k folded forward and added to the next 128 bits of message.
CKPT_PCLMUL inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
  __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

// The end both paths share: four consecutive 128-bit lanes folded into one, the rest of the
// message folded 16 bytes at a time, then the lane and the last n < 16 bytes through the table.
// Always inlined, so that the AVX-512 path stays VEX/EVEX code to its end, where the compiler
// clears the upper register state (vzeroupper) before returning. Called instead, this legacy-SSE
// code ran with that state dirty (GCC put no vzeroupper before the call), and so did the
// caller's XXH3 of the same block, 3.5x slower on the EPYC CI machine (13.3 -> 3.8 GB/s).
CKPT_PCLMUL inline __attribute__((always_inline)) uint32_t fold_four_lanes_and_tail(__m128i x0, __m128i x1, __m128i x2, __m128i x3, const uint8_t* p, size_t n) {
  const __m128i k128 = constants128(kFold128);
  x0 = fold(x0, k128, x1);
  x0 = fold(x0, k128, x2);
  x0 = fold(x0, k128, x3);
  for (; n >= 16; p += 16, n -= 16) x0 = fold(x0, k128, load128(p));
  alignas(16) uint8_t lane[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(lane), x0);
  return table_update(table_update(0, lane, 16), p, n);
}

// Four 128-bit lanes over 64-byte blocks. n >= 64.
CKPT_PCLMUL uint32_t fold128_update(uint32_t reg, const uint8_t* p, size_t n) {
  const __m128i k512 = constants128(kFold512);
  __m128i x0 = _mm_xor_si128(load128(p), _mm_cvtsi32_si128(static_cast<int>(reg)));
  __m128i x1 = load128(p + 16), x2 = load128(p + 32), x3 = load128(p + 48);
  for (p += 64, n -= 64; n >= 64; p += 64, n -= 64) {
    x0 = fold(x0, k512, load128(p));
    x1 = fold(x1, k512, load128(p + 16));
    x2 = fold(x2, k512, load128(p + 32));
    x3 = fold(x3, k512, load128(p + 48));
  }
  return fold_four_lanes_and_tail(x0, x1, x2, x3, p, n);
}

CKPT_VPCLMUL inline __m512i load512(const uint8_t* q) { return _mm512_loadu_si512(q); }
CKPT_VPCLMUL inline __m512i constants512(FoldConstants k) {
  const auto lo = static_cast<long long>(k.low), hi = static_cast<long long>(k.high);
  return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
}

// The same fold on four 128-bit lanes at once; 0x96 is the truth table of a ^ b ^ c.
CKPT_VPCLMUL inline __m512i fold(__m512i x, __m512i k, __m512i next) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11), next, 0x96);
}

// Sixteen 128-bit lanes (four 512-bit registers) over 256-byte blocks, so each carry-less
// multiply's latency is hidden behind the other registers'; then the four registers folded into
// one 512 bits apart, the rest of the message 64 bytes at a time, and that register's four lanes
// handed to the shared end. n >= 256.
CKPT_VPCLMUL uint32_t fold512_update(uint32_t reg, const uint8_t* p, size_t n) {
  const __m512i k2048 = constants512(kFold2048), k512 = constants512(kFold512);
  __m512i x0 = _mm512_xor_si512(load512(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(reg))));
  __m512i x1 = load512(p + 64), x2 = load512(p + 128), x3 = load512(p + 192);
  for (p += 256, n -= 256; n >= 256; p += 256, n -= 256) {
    x0 = fold(x0, k2048, load512(p));
    x1 = fold(x1, k2048, load512(p + 64));
    x2 = fold(x2, k2048, load512(p + 128));
    x3 = fold(x3, k2048, load512(p + 192));
  }
  x0 = fold(x0, k512, x1);
  x0 = fold(x0, k512, x2);
  x0 = fold(x0, k512, x3);
  for (; n >= 64; p += 64, n -= 64) x0 = fold(x0, k512, load512(p));
  alignas(64) __m128i lanes[4];  // the register's four 128-bit lanes, in message order
  _mm512_store_si512(lanes, x0);
  return fold_four_lanes_and_tail(lanes[0], lanes[1], lanes[2], lanes[3], p, n);
}
#endif

}  // namespace

uint32_t crc32_reference(uint32_t crc, const uint8_t* data, size_t n) {
  return ~table_update(~crc, data, n);
}

#if defined(__x86_64__)
namespace detail {

bool cpu_has_pclmul() {
  static const bool has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return has;
}

bool cpu_has_vpclmul() {
  static const bool has = cpu_has_pclmul() && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq");
  return has;
}

uint32_t crc32_pclmul(uint32_t crc, const uint8_t* data, size_t n) {
  return n >= 64 ? ~fold128_update(~crc, data, n) : crc32_reference(crc, data, n);
}

uint32_t crc32_vpclmul(uint32_t crc, const uint8_t* data, size_t n) {
  return n >= 256 ? ~fold512_update(~crc, data, n) : crc32_reference(crc, data, n);
}

}  // namespace detail
#endif

uint32_t crc32(uint32_t crc, const uint8_t* data, size_t n) {
#if defined(__x86_64__)
  if (n >= 256 && detail::cpu_has_vpclmul()) return detail::crc32_vpclmul(crc, data, n);
  if (n >= 64 && detail::cpu_has_pclmul()) return detail::crc32_pclmul(crc, data, n);
#endif
  return crc32_reference(crc, data, n);
}

// Let U(r, M) be the raw register after feeding M from r. It is affine in r: U(r, M) =
// r·x^(8|M|) + U(0, M) mod P, and crc32(c, M) = ~U(~c, M). So crc32(0, A||B) = ~U(U(~0, A), B)
// and crc32(0, B) = ~U(~0, B) differ by (U(~0, A) + ~0)·x^(8|B|) = crc_a·x^(8|B|): the init and
// final inversions cancel.
uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  return multiply_mod_p(crc_a, x_pow_mod_p(len_b, 3)) ^ crc_b;
}

}  // namespace ckpt
