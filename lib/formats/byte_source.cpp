#include "formats/byte_source.h"

#include <cstring>
#include <stdexcept>

namespace ckpt {

std::vector<uint8_t> ByteSource::read_vector(uint64_t offset, size_t n) const {
  std::vector<uint8_t> v(n);
  read(offset, n, v.data());
  return v;
}

void FileSource::read(uint64_t offset, size_t n, void* out) const {
  if (offset > size_ || n > size_ - offset) throw std::out_of_range("FileSource::read past the end");
  file_.pread_exact(out, n, offset);
}

void MemorySource::read(uint64_t offset, size_t n, void* out) const {
  if (offset > size_ || n > size_ - offset) throw std::out_of_range("MemorySource::read past the end");
  if (n) std::memcpy(out, data_ + offset, n);
}

}  // namespace ckpt
