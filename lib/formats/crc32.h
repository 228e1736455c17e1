// CRC-32 as zip uses it (ISO-HDLC: reflected polynomial 0xEDB88320, init and final xor ~0).
// crc32_reference is the one definition (a byte-at-a-time table walk); crc32 is the fast path
// (PCLMULQDQ folding on x86-64 CPUs that have it, the reference elsewhere), tested against it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt {

// Both continue a running CRC: pass 0 for a new message, or a previous result to append bytes.
uint32_t crc32_reference(uint32_t crc, const uint8_t* data, size_t n);
uint32_t crc32(uint32_t crc, const uint8_t* data, size_t n);

// Whether crc32() uses the carry-less multiply path on this CPU (for tests and benchmarks).
bool crc32_has_fast_path();

}  // namespace ckpt
