// The zip format torch.save writes since 1.6 (caffe2/serialize/inline_container.cc, torch/serialization.py
// `_save`): <folder>/data.pkl holds the pickled state dict, <folder>/data/<key> each storage's raw bytes.
#pragma once

#include <string>

#include "checkpoint/source_check.h"
#include <vector>

#include "core/file_io.h"
#include "formats/torch_state_dict.h"

namespace ckpt {

inline constexpr uint64_t kMaxPickleBytes = 1ull << 30;

// With verify_crc, the small records (data.pkl, byteorder, ...) are checked now and the storage
// records' CRC-32 checks are appended to `deferred`: the executor feeds them the bytes its
// copies read and finishes them after the copies (see checkpoint/source_check.h).
std::vector<TorchTensor> read_torch_zip(const File& f, const std::string& key, bool verify_crc, int file_index,
                                        SourceChecks& deferred);

}  // namespace ckpt
