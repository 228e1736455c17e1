// Random-access read-only bytes with a name for errors: a file on disk, or memory (tests and the
// fuzzers parse the same code paths from a buffer). Every read is bounds-checked by the caller
// against size(); a read past the end is a logic error and throws.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/file_io.h"

namespace ckpt {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  virtual void read(uint64_t offset, size_t n, void* out) const = 0;
  virtual const std::string& name() const = 0;
  // Where a read starting at `offset` and meant to end by `max_end` should end so that reads cut
  // there decode no unit of the source twice (a packed source decodes whole groups): the largest
  // such end in (offset, max_end], or max_end where the bytes have no units (a file on disk).
  virtual uint64_t read_end(uint64_t offset, uint64_t max_end) const {
    (void)offset;
    return max_end;
  }
  std::vector<uint8_t> read_vector(uint64_t offset, size_t n) const;
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(const File& f) : file_(f), size_(f.size()) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, size_t n, void* out) const override;
  const std::string& name() const override { return file_.path(); }

 private:
  const File& file_;
  uint64_t size_;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t n, std::string name) : data_(data), size_(n), name_(std::move(name)) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, size_t n, void* out) const override;
  const std::string& name() const override { return name_; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  std::string name_;
};

}  // namespace ckpt
