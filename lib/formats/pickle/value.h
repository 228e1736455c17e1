// The objects a restricted unpickle can build. Only data (None, bools, ints, floats, strings,
// tuples, lists, dicts), the allowed globals themselves, storage references and rebuilt tensor
// descriptions exist: nothing from the file is ever called or executed. Objects live in an arena
// owned by the caller and point at each other with raw pointers, so memo references (even cyclic
// ones, which a hostile file can build with APPEND) cost no reference counting and cannot leak.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"

namespace ckpt::pickle {

// The allow-list: a strict subset of the globals torch.load(weights_only=True) allows by default
// (torch/_weights_only_unpickler.py), so ckpt never accepts a file torch would refuse.
enum class Global {
  kOrderedDict,         // collections.OrderedDict
  kRebuildTensor,       // torch._utils._rebuild_tensor
  kRebuildTensorV2,     // torch._utils._rebuild_tensor_v2
  kRebuildTensorV3,     // torch._utils._rebuild_tensor_v3
  kRebuildParameter,    // torch._utils._rebuild_parameter
  kStorageClass,        // torch.<Name>Storage (typed) or torch.storage.UntypedStorage (bytes)
  kDtype,               // torch.<dtype>
};

// A storage as a persistent id names it: ('storage', class, key, location, numel[, view]).
struct StorageRef {
  std::string key;
  DType dtype = DType::U8;  // element type of the storage class (U8 for UntypedStorage)
  uint64_t numel = 0;       // elements of `dtype` in the whole storage
  // Legacy streams only: a storage that is a view into another (view_metadata).
  uint64_t view_offset = 0;            // in elements
  std::optional<uint64_t> view_numel;  // set for views
};

struct Object;

// What _rebuild_tensor* describes: a strided view of a storage, in elements of `dtype`.
struct TensorView {
  const Object* storage = nullptr;  // kind == kStorage
  DType dtype = DType::U8;
  uint64_t offset = 0;
  std::vector<uint64_t> shape;
  std::vector<int64_t> strides;
};

enum class Kind { kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kSet, kGlobal, kStorage, kTensor };
const char* kind_name(Kind k);

struct Object {
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;                          // kStr; kGlobal: "module.name"
  std::vector<Object*> items;                // kTuple, kList
  std::vector<std::pair<Object*, Object*>> entries;  // kDict, insertion order
  std::unordered_map<std::string, size_t> key_index;  // kDict: encoded key -> entries index
  bool ordered = false;                      // kDict built by OrderedDict()
  Global global = Global::kOrderedDict;      // kGlobal
  DType global_dtype = DType::U8;            // kGlobal kStorageClass / kDtype
  StorageRef storage;                        // kStorage
  TensorView tensor;                         // kTensor

  // For kDict with string keys: the value under `key`, or nullptr.
  const Object* get(const std::string& key) const;
};

class Arena {
 public:
  Object* make(Kind k) {
    objects_.emplace_back();
    objects_.back().kind = k;
    return &objects_.back();
  }
  size_t size() const { return objects_.size(); }
  // Every storage a persistent id named, by key (legacy files list their data by these keys).
  std::unordered_map<std::string, const Object*> storages;

 private:
  std::deque<Object> objects_;  // stable addresses
};

}  // namespace ckpt::pickle
