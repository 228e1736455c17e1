// OutputFileWriter: whatever the offsets, lengths and buffer placements of the writes, and from
// several threads at once, the file holds exactly the bytes written, direct (O_DIRECT for each
// write's whole pages, the page cache for its ends) or not; a buffer whose place in a page does
// not match its file offset's is written through the page cache whole.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "test_support.h"

using namespace ckpt;

namespace {

struct Piece {
  uint64_t offset, n;
  bool matched;  // the buffer's place in a page matches the file offset's
};

// Writes `bytes` as the pieces (a partition of the file, in shuffled order) from `threads`
// threads, each piece from its own buffer, and returns the file's bytes.
std::vector<uint8_t> write_pieces(const std::string& path, const std::vector<uint8_t>& bytes,
                                  std::vector<Piece> pieces, bool direct, int threads) {
  OutputFileWriter w = OutputFileWriter::create(path, bytes.size(), direct);
  std::mt19937 rng(7);
  std::shuffle(pieces.begin(), pieces.end(), rng);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < pieces.size(); i += static_cast<size_t>(threads)) {
        const Piece& p = pieces[i];
        // aligned_alloc takes whole multiples of the alignment (ASan holds the test to it).
        uint8_t* base = static_cast<uint8_t*>(std::aligned_alloc(kDirectAlign, (p.n / kDirectAlign + 3) * kDirectAlign));
        uint8_t* data = base + p.offset % kDirectAlign + (p.matched ? 0 : 8);
        std::memcpy(data, bytes.data() + p.offset, p.n);
        w.write(data, p.n, p.offset);
        std::free(base);
      }
    });
  for (auto& th : pool) th.join();
  w.close();
  return test::read_file_bytes(path);
}

}  // namespace

TEST(OutputFileWriter, WritesExactBytesAtAnyOffsetDirectOrNot) {
  test::ScratchDir dir;
  std::mt19937 rng(1);
  const uint64_t size = 3 * (1 << 20) + 12345;  // not a whole page
  std::vector<uint8_t> bytes(size);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  // Cut points at random offsets (most inside a page), a few on page boundaries, and pieces that
  // lie inside one page.
  std::vector<uint64_t> cuts = {0, 100, 4096, 4100, 8000, 3 * kDirectAlign, size};
  for (int i = 0; i < 40; ++i) cuts.push_back(rng() % size);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<Piece> pieces;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) pieces.push_back({cuts[i], cuts[i + 1] - cuts[i], i % 5 != 3});
  int k = 0;
  for (bool direct : {true, false})
    for (int threads : {1, 3}) {
      const std::string path = dir / ("out" + std::to_string(k++));
      EXPECT_EQ(write_pieces(path, bytes, pieces, direct, threads), bytes) << "direct " << direct << ", threads " << threads;
    }
}

TEST(OutputFileWriter, UnwrittenRangesReadAsZeros) {
  test::ScratchDir dir;
  for (bool direct : {true, false}) {
    const std::string path = dir / (direct ? "d" : "b");
    std::vector<uint8_t> expect(5 * kDirectAlign + 77, 0);
    OutputFileWriter w = OutputFileWriter::create(path, expect.size(), direct);
    uint8_t* base = static_cast<uint8_t*>(std::aligned_alloc(kDirectAlign, 4 * kDirectAlign));
    std::memset(base, 1, 4 * kDirectAlign);
    w.write(base + 10, 2 * kDirectAlign, kDirectAlign + 10);  // a padding gap on either side
    std::free(base);
    w.close();
    std::fill(expect.begin() + kDirectAlign + 10, expect.begin() + 3 * kDirectAlign + 10, 1);
    EXPECT_EQ(test::read_file_bytes(path), expect) << "direct " << direct;
  }
}

// WriteBehind: blocks made by several threads into pool buffers and written by writer threads (or
// in the caller's thread, with none) land exactly; producers that outrun the writers wait for a
// buffer instead of failing or growing the pool.
TEST(WriteBehind, WritesEveryBlockExactlyFromAFewBuffers) {
  test::ScratchDir dir;
  std::mt19937 rng(3);
  const uint64_t block = 3 * kDirectAlign + 100, blocks = 24, size = block * blocks + 17;
  std::vector<uint8_t> bytes(size);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  for (int writers : {0, 1, 3})
    for (bool direct : {true, false}) {
      const std::string path = dir / ("wb" + std::to_string(writers) + (direct ? "d" : "b"));
      OutputFileWriter w = OutputFileWriter::create(path, size, direct);
      WriteBehind writes(4, block + kDirectAlign, writers);
      std::vector<std::thread> pool;
      for (uint64_t t = 0; t < 2; ++t)
        pool.emplace_back([&, t] {
          for (uint64_t i = t; i * block < size; i += 2) {
            const uint64_t off = i * block, n = std::min(block, size - off);
            uint8_t* buf = writes.acquire();
            uint8_t* data = buf + off % kDirectAlign;
            std::memcpy(data, bytes.data() + off, n);
            writes.submit(w, buf, data, n, off);
          }
        });
      for (auto& th : pool) th.join();
      writes.finish();
      w.close();
      EXPECT_EQ(test::read_file_bytes(path), bytes) << "writers " << writers << ", direct " << direct;
    }
}

TEST(WriteBehind, AFailedWriteIsReportedByFinishAndAcquire) {
  test::ScratchDir dir;
  for (int writers : {0, 2}) {
    OutputFileWriter w = OutputFileWriter::create(dir / ("f" + std::to_string(writers)), 2 * kDirectAlign, true);
    w.close();  // every write now fails (a closed descriptor)
    WriteBehind writes(2, 2 * kDirectAlign, writers);
    uint8_t* buf = writes.acquire();
    if (writers == 0) {
      EXPECT_THROW(writes.submit(w, buf, buf, kDirectAlign, 0), Error);
    } else {
      writes.submit(w, buf, buf, kDirectAlign, 0);
      EXPECT_THROW(writes.finish(), Error);
      EXPECT_THROW(writes.acquire(), Error);
    }
  }
}
