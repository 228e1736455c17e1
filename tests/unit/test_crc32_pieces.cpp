// The CRC-32 of a range assembled from pieces: equal to the CRC of the range read whole, whatever
// pieces arrive (any order, from several threads, repeated, overlapping, reaching outside the
// range, leaving gaps), and reading from the source only the bytes no usable piece covered.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "formats/crc32.h"
#include "formats/crc32_pieces.h"

using namespace ckpt;

namespace {

// Memory that counts the bytes read from it.
class CountingSource : public MemorySource {
 public:
  using MemorySource::MemorySource;
  void read(uint64_t offset, size_t n, void* out) const override {
    bytes_read += n;
    MemorySource::read(offset, n, out);
  }
  mutable std::atomic<uint64_t> bytes_read{0};
};

struct Fixture {
  std::vector<uint8_t> data;
  CountingSource src;
  explicit Fixture(size_t n, uint64_t seed) : data(make(n, seed)), src(data.data(), data.size(), "mem") {}
  static std::vector<uint8_t> make(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  }
  uint32_t crc(uint64_t begin, uint64_t n) const { return crc32_reference(0, data.data() + begin, n); }
  void add(Crc32Pieces& p, uint64_t offset, uint64_t n) const { p.add(offset, data.data() + offset, n); }
};

}  // namespace

TEST(Crc32Pieces, NoPiecesReadsTheWholeRange) {
  Fixture f(10000, 1);
  Crc32Pieces none;
  EXPECT_EQ(none.crc_of(f.src, 100, 9000), f.crc(100, 9000));
  EXPECT_EQ(f.src.bytes_read.load(), 9000u);
  Crc32Pieces empty;
  EXPECT_EQ(empty.crc_of(f.src, 5, 0), 0u);
}

TEST(Crc32Pieces, TilingPiecesFromManyThreadsReadNothing) {
  Fixture f(1 << 20, 2);
  const uint64_t begin = 1000, end = f.data.size() - 777;
  std::vector<std::pair<uint64_t, uint64_t>> tiles;
  std::mt19937_64 rng(3);
  for (uint64_t at = begin; at < end;) {
    const uint64_t n = std::min<uint64_t>(end - at, 1 + rng() % 5000);
    tiles.push_back({at, n});
    at += n;
  }
  std::shuffle(tiles.begin(), tiles.end(), rng);
  Crc32Pieces seen;
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < tiles.size();) f.add(seen, tiles[i].first, tiles[i].second);
    });
  for (auto& t : pool) t.join();
  EXPECT_EQ(seen.crc_of(f.src, begin, end - begin), f.crc(begin, end - begin));
  EXPECT_EQ(f.src.bytes_read.load(), 0u);
}

TEST(Crc32Pieces, GapsRepeatsAndOverlapsAreReadOrSkipped) {
  Fixture f(4000, 4);
  Crc32Pieces seen;
  f.add(seen, 0, 50);       // starts before the range: skipped, its part in the range read
  f.add(seen, 150, 100);    // 100..150 read, then combined
  f.add(seen, 150, 100);    // a repeat (an aliased tensor's copy): skipped
  f.add(seen, 150, 40);     // a shorter piece at the same start: skipped
  f.add(seen, 200, 100);    // straddles the one taken: skipped, 250..300 read
  f.add(seen, 300, 200);
  f.add(seen, 900, 200);    // runs past the range's end: skipped, 900..1000 read
  EXPECT_EQ(seen.crc_of(f.src, 20, 980), f.crc(20, 980));
  EXPECT_EQ(f.src.bytes_read.load(), (150 - 20) + (300 - 250) + (1000 - 500));
}

TEST(Crc32Pieces, RandomPiecesGiveTheWholeCrc) {
  Fixture f(200000, 5);
  std::mt19937_64 rng(6);
  for (int round = 0; round < 200; ++round) {
    const uint64_t begin = rng() % 1000, n = rng() % (f.data.size() - begin);
    Crc32Pieces seen;
    for (int k = static_cast<int>(rng() % 40); k-- > 0;) {
      const uint64_t off = rng() % f.data.size(), len = rng() % std::min<uint64_t>(f.data.size() - off + 1, 30000);
      f.add(seen, off, len);
    }
    ASSERT_EQ(seen.crc_of(f.src, begin, n), f.crc(begin, n)) << round;
  }
}
