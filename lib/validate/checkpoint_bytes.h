// The bytes of a checkpoint's weight files as the CPU checks of validate read them (digests,
// scale values, the GEMM reference check), in parallel: a file on disk is mapped once and read
// in place; a file inside a packed checkpoint is decoded range by range through the executor's
// SourceReader (plan/source_reader.h), whose errors name the file, the tensor and the frame.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/file_io.h"
#include "plan/source_reader.h"

namespace ckpt::validate {

class CheckpointBytes {
 public:
  explicit CheckpointBytes(const Checkpoint& ck);
  // Bytes [offset, offset + n) of file `file` of the checkpoint: a pointer into its map, or into
  // `buf` (resized) where they had to be read. Any thread; each passes its own `buf`.
  const uint8_t* get(int file, uint64_t offset, uint64_t n, std::vector<uint8_t>& buf) const;

 private:
  SourceReader reader_;
  std::vector<std::optional<MappedFile>> maps_;  // empty for packed files
};

}  // namespace ckpt::validate
