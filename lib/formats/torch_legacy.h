// The legacy (pre-1.6) torch.save stream (torch/serialization.py `_legacy_load`): pickled magic number,
// protocol version and sys_info, the pickled object, the pickled list of storage keys, then for each
// key an int64 element count and the raw bytes. Read with the same restricted unpickler.
#pragma once

#include <string>
#include <vector>

#include "core/file_io.h"
#include "formats/torch_state_dict.h"

namespace ckpt {

// True when the file starts with the pickled legacy magic number.
bool is_torch_legacy(const uint8_t* head, size_t n);

std::vector<TorchTensor> read_torch_legacy(const File& f, const std::string& key, int file_index);

}  // namespace ckpt
