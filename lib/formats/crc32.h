// CRC-32 as zip uses it (ISO-HDLC: reflected polynomial 0xEDB88320, init and final xor ~0).
// crc32_reference is the one definition (a byte-at-a-time table walk); crc32 is the fast path
// (carry-less multiply folding on x86-64 CPUs that have it, the reference elsewhere), tested
// against it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt {

// Both continue a running CRC: pass 0 for a new message, or a previous result to append bytes.
uint32_t crc32_reference(uint32_t crc, const uint8_t* data, size_t n);
uint32_t crc32(uint32_t crc, const uint8_t* data, size_t n);

// The CRC-32 of A followed by B, from crc_a = crc32(0, A), crc_b = crc32(0, B) and B's length:
// pieces of a message checked apart (on different threads, in any order) make the whole's CRC.
uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#if defined(__x86_64__)
// Each folding path on its own, for the tests: any length (below a path's block size it runs the
// table walk). Call one only where its cpu_has_* says the CPU can run it.
namespace detail {
bool cpu_has_pclmul();   // PCLMULQDQ, 128-bit lanes
bool cpu_has_vpclmul();  // VPCLMULQDQ on AVX-512 registers
uint32_t crc32_pclmul(uint32_t crc, const uint8_t* data, size_t n);
uint32_t crc32_vpclmul(uint32_t crc, const uint8_t* data, size_t n);
}  // namespace detail
#endif

}  // namespace ckpt
