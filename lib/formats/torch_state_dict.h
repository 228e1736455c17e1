// From an unpickled torch object to the tensors of a state dict: finds the tensor dict (at the
// top level or under --key), and turns each rebuilt tensor into a SourceView of the file after
// checking it against its storage (no negative strides, nothing outside the storage, whole bytes).
// Shared by the zip and the legacy readers, which differ only in where a storage's bytes lie.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "checkpoint/tensor_ref.h"
#include "formats/pickle/value.h"

namespace ckpt {

// Where a storage's bytes are in the file.
struct StorageLocation {
  uint64_t offset = 0;
  uint64_t nbytes = 0;
};
using StorageResolver = std::function<StorageLocation(const pickle::StorageRef&)>;

struct TorchTensor {
  std::string name;
  std::string storage_key;
  SourceView view;
};

// `key` is OpenOptions::state_dict_key ("" for the top level).
std::vector<TorchTensor> read_state_dict(const pickle::Object* root, const std::string& file, const std::string& key,
                                         int file_index, const StorageResolver& resolve);

}  // namespace ckpt
