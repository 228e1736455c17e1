// The CRC-32 of a byte range of a source, assembled from the CRCs of pieces of it computed
// elsewhere — by the executor's copies, while each block of the bytes was in cache anyway — so
// that checking a torch zip's records costs no second read of the data. Only the bytes that no
// piece covers are read again.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "core/cancel.h"
#include "formats/byte_source.h"

namespace ckpt {

class Crc32Pieces {
 public:
  // Records the CRC of `data`, which are bytes [offset, offset + n) of the source. Any thread, any
  // order; pieces may repeat or overlap (aliased tensors copy the same storage twice).
  void add(uint64_t offset, const uint8_t* data, size_t n);
  // The CRC-32 of bytes [begin, begin + n) of src: the pieces that tile the range from its start
  // combined in order, each stretch no usable piece covers read from src. Call once adding is done.
  // Reads what no piece covers in 4 MiB blocks, checking `cancel` before each.
  uint32_t crc_of(const ByteSource& src, uint64_t begin, uint64_t n, const CancelToken* cancel = nullptr);

 private:
  struct Piece {
    uint64_t offset, n;
    uint32_t crc;
  };
  std::mutex mutex_;
  std::vector<Piece> pieces_;
};

}  // namespace ckpt
