// Checksums recorded in ckpt-manifest.json and checked by `ckpt validate`.
//
// A tensor digest is built so that it can be computed in parallel, on the CPU while data streams
// through and on the GPU from the bytes that arrived: the tensor's bytes are cut into 1 MiB blocks
// (the last one shorter), each block is hashed with XXH3-64 (seed 0), and the tensor digest is
// XXH3-64 of the block digests written as little-endian u64s. A file digest is the same combine
// over [XXH3-64 of the file's 8+N header bytes, every tensor digest in file order]. Any flipped
// bit changes its block digest and so the tensor and file digests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace ckpt {

inline constexpr uint64_t kHashBlockBytes = uint64_t{1} << 20;

uint64_t hash_bytes(const void* data, size_t n);
uint64_t combine_digests(std::span<const uint64_t> digests);
inline uint64_t hash_block_count(uint64_t nbytes) {
  return (nbytes + kHashBlockBytes - 1) / kHashBlockBytes;
}
// The reference computation over a whole buffer; the executor computes the same blockwise.
uint64_t tensor_digest(const uint8_t* data, uint64_t nbytes);

std::string digest_hex(uint64_t digest);
bool parse_digest_hex(const std::string& s, uint64_t* out);

}  // namespace ckpt
