// hash_bytes (XXH3-64 by the widest path the CPU has) against XXH3's scalar code, compiled here:
// every length class XXH3 treats apart (0, 1-3, 4-8, 9-16, 17-128, 129-240, then stripes and
// blocks of 1 KiB), the executor's 1 MiB blocks and their neighbours, at unaligned addresses.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/hash.h"

#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_SCALAR
#include <xxhash.h>

namespace ckpt {
namespace {

TEST(HashBytes, EqualsScalarXxh3AtEveryLengthClass) {
  std::mt19937 rng(18);
  std::vector<uint8_t> data((3u << 20) + 64);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 2100; ++n) lengths.push_back(n);
  for (size_t n : {size_t{1} << 20, (size_t{1} << 20) - 1, (size_t{1} << 20) + 1, (size_t{3} << 20) + 17})
    lengths.push_back(n);
  for (size_t n : lengths)
    for (size_t at : {0, 1, 7, 33}) {
      ASSERT_EQ(hash_bytes(data.data() + at, n), XXH3_64bits(data.data() + at, n)) << "length " << n << " at +" << at;
    }
}

}  // namespace
}  // namespace ckpt
