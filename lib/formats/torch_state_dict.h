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
  uint64_t storage_bytes = 0;  // the whole storage the view reads from
};

// A view may repeat its storage's elements (stride 0, as torch's expand() makes, or overlapping
// strides), so a few bytes of storage can describe any size: a 611-byte .bin described a 34 GB
// output. Refuses tensors whose bytes exceed their distinct storages' bytes more than
// kMaxExpansion times and by more than kExpansionSlack, naming the tensor that expands most,
// unless `allow` (--allow-expand).
inline constexpr uint64_t kMaxExpansion = 2;
inline constexpr uint64_t kExpansionSlack = 64ull << 20;
void check_expansion(const std::string& file, const std::vector<TorchTensor>& tensors, bool allow);

// `key` is OpenOptions::state_dict_key ("" for the top level).
std::vector<TorchTensor> read_state_dict(const pickle::Object* root, const std::string& file, const std::string& key,
                                         int file_index, const StorageResolver& resolve);

}  // namespace ckpt
