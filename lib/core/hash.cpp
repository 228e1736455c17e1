#include "core/hash.h"

#include <cstdio>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckpt {

#if defined(__x86_64__)
namespace detail {
uint64_t hash_bytes_avx2(const void* data, size_t n);  // hash_avx2.cpp
}
#endif

uint64_t hash_bytes(const void* data, size_t n) {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return detail::hash_bytes_avx2(data, n);
#endif
  return XXH3_64bits(data, n);
}

uint64_t combine_digests(std::span<const uint64_t> digests) {
  std::vector<uint8_t> le(digests.size() * 8);
  for (size_t i = 0; i < digests.size(); ++i)
    for (int b = 0; b < 8; ++b) le[i * 8 + b] = static_cast<uint8_t>(digests[i] >> (8 * b));
  return XXH3_64bits(le.data(), le.size());
}

uint64_t tensor_digest(const uint8_t* data, uint64_t nbytes) {
  std::vector<uint64_t> blocks(hash_block_count(nbytes));
  for (size_t i = 0; i < blocks.size(); ++i) {
    uint64_t off = i * kHashBlockBytes;
    blocks[i] = hash_bytes(data + off, std::min(kHashBlockBytes, nbytes - off));
  }
  return combine_digests(blocks);
}

std::string digest_hex(uint64_t digest) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(digest));
  return buf;
}

bool parse_digest_hex(const std::string& s, uint64_t* out) {
  if (s.size() != 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace ckpt
