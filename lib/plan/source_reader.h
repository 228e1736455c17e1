// Reading source tensor bytes during execution: whole ranges with pread, strided views through a
// short-lived memory map of just the rows a chunk needs (so resident memory stays bounded).
// A source path inside a packed checkpoint ("dst/checkpoint.ckptpack/model.safetensors", see
// formats/packed_source.h) is read by decoding the groups each read covers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/tensor_ref.h"
#include "core/file_io.h"
#include "formats/packed_source.h"

namespace ckpt {

class SourceReader {
 public:
  explicit SourceReader(const std::vector<std::string>& paths);
  // The open file of a source on disk (not one inside a packed checkpoint).
  const File& file(int index) const;
  size_t file_count() const { return files_.size(); }

  // Copies elements [first, first + count) of `view`, in row-major order, into `out`
  // (count * element size bytes). Zero views fill zeros. Sub-byte dtypes must be contiguous.
  void gather(const SourceView& view, uint64_t first, uint64_t count, uint8_t* out) const;
  // Reads bytes [offset, offset + n) of a source.
  void read(int file, void* out, size_t n, uint64_t offset) const;
  // A source's size in bytes (of a file inside a packed checkpoint: its unpacked size).
  uint64_t size(int file) const;
  // Where a read of a source from `offset` should end, at most at max_end, so that reads cut there
  // decode nothing twice (ByteSource::read_end): max_end for a file on disk.
  uint64_t read_end(int file, uint64_t offset, uint64_t max_end) const;
  // True when the source is a file inside a packed checkpoint (reads decode it).
  bool packed(int file) const { return packed_.at(static_cast<size_t>(file)) != nullptr; }

 private:
  std::vector<File> files_;                        // unopened for packed sources
  std::vector<std::unique_ptr<ByteSource>> packed_;  // null for files on disk
  std::map<std::string, std::shared_ptr<const PackedContainer>> containers_;
};

// The elements of one source view, as a compute engine asks for them: `with` hands a pointer to
// elements [first, first + count) in row-major order — the page cache itself through a
// short-lived read-only mapping where the view is a contiguous range of a file on disk (no copy,
// and the pages leave the process's resident set with the unmap), else a copy gathered into a
// buffer of the calling thread; `copy` writes them into the engine's memory (a GPU engine's pinned
// staging). FP8 and INT4 quantization read their weights through it.
class SourceElements {
 public:
  SourceElements(const SourceReader& src, const SourceView& view) : src_(src), view_(view) {}
  void with(uint64_t first, uint64_t count, const std::function<void(const uint8_t*)>& fn) const;
  void copy(uint64_t first, uint64_t count, uint8_t* dst) const { src_.gather(view_, first, count, dst); }
  const SourceView& view() const { return view_; }

 private:
  const SourceReader& src_;
  const SourceView& view_;
};

}  // namespace ckpt
