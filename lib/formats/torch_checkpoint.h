// PyTorch checkpoints (.bin/.pt/.pth): the zip container torch >= 1.6 writes and the legacy
// pre-1.6 stream, read through a restricted unpickler. Adds the file's tensors to a Checkpoint.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"

namespace ckpt {

void add_torch_file(Checkpoint& ck, const std::string& path, const OpenOptions& options);

}  // namespace ckpt
