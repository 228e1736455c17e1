#include "formats/crc32_pieces.h"

#include <algorithm>

#include "formats/crc32.h"

namespace ckpt {

namespace {

// Continues `crc` over bytes [begin, end) of src, read in blocks.
uint32_t crc_of_read(const ByteSource& src, uint64_t begin, uint64_t end, uint32_t crc, const CancelToken* cancel) {
  constexpr uint64_t kBlock = 4u << 20;
  std::vector<uint8_t> buf(std::min(kBlock, end - begin));
  for (uint64_t off = begin; off < end; off += kBlock) {
    check_cancel(cancel);
    const size_t n = static_cast<size_t>(std::min(kBlock, end - off));
    src.read(off, n, buf.data());
    crc = crc32(crc, buf.data(), n);
  }
  return crc;
}

}  // namespace

void Crc32Pieces::add(uint64_t offset, const uint8_t* data, size_t n) {
  const Piece piece{offset, n, crc32(0, data, n)};
  std::lock_guard<std::mutex> lock(mutex_);
  pieces_.push_back(piece);
}

uint32_t Crc32Pieces::crc_of(const ByteSource& src, uint64_t begin, uint64_t n, const CancelToken* cancel) {
  std::lock_guard<std::mutex> lock(mutex_);
  // By start, the longest first where several start together: fewer bytes left to read.
  std::sort(pieces_.begin(), pieces_.end(),
            [](const Piece& a, const Piece& b) { return a.offset != b.offset ? a.offset < b.offset : a.n > b.n; });
  const uint64_t end = begin + n;
  uint64_t at = begin;  // everything before `at` is in crc
  uint32_t crc = 0;
  for (const Piece& p : pieces_) {
    // A piece that starts before `at` repeats or straddles bytes already counted, and one that
    // runs past the range is not all ours: neither can be combined; their bytes are read instead.
    if (p.offset < at || p.offset + p.n > end) continue;
    crc = crc32_combine(crc_of_read(src, at, p.offset, crc, cancel), p.crc, p.n);
    at = p.offset + p.n;
  }
  return crc_of_read(src, at, end, crc, cancel);
}

}  // namespace ckpt
