// The bytes of a checkpoint's weight files as the CPU checks of validate read them (digests,
// scale values, the GEMM reference check), in parallel: a file on disk is mapped once and read
// in place; a file inside a packed checkpoint is decoded range by range through the executor's
// SourceReader (plan/source_reader.h), whose errors name the file, the tensor and the frame.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/file_io.h"
#include "core/parallel.h"
#include "plan/source_reader.h"

namespace ckpt::validate {

class CheckpointBytes {
 public:
  explicit CheckpointBytes(const Checkpoint& ck);
  // Bytes [offset, offset + n) of file `file` of the checkpoint: a pointer into its map, or into
  // `buf` (resized) where they had to be read. Any thread; each passes its own `buf`.
  const uint8_t* get(int file, uint64_t offset, uint64_t n, std::vector<uint8_t>& buf) const;
  // Bytes [offset, offset + n) of file `file` for a large read: a pointer into its map, or (a
  // packed file) decoded into `buf` (allocated, not zeroed) by `workers`, in pieces of about
  // `piece_bytes` that end where no group is decoded twice (SourceReader::read_end). The runtime's
  // Model::load reads tensors this way: one thread decoding a 5 GB shard at ~1 GB/s made validate's
  // allocate phase 22.6 s for a packed 8B model against 3.7 s unpacked (BENCHMARKS.md,
  // 2026-12-07 23:31).
  const uint8_t* get_parallel(int file, uint64_t offset, uint64_t n, std::unique_ptr<uint8_t[]>& buf,
                              const Workers& workers, uint64_t piece_bytes = uint64_t{64} << 20) const;

 private:
  SourceReader reader_;
  std::vector<std::optional<MappedFile>> maps_;  // empty for packed files
};

}  // namespace ckpt::validate
