#include "resident_tensors.h"

#include <stdexcept>

namespace ckpt::cuda {

void ResidentTensors::add(const Checkpoint& ck, std::vector<LoadedFile> files) {
  if (files.size() != ck.files.size()) throw std::invalid_argument("ResidentTensors::add: one loaded file per checkpoint file");
  for (const TensorRef& t : ck.tensors) {
    const int f = t.view.file;
    if (f < 0 || static_cast<size_t>(f) >= files.size() || !t.view.is_contiguous()) continue;
    const uint64_t size = files[f].bytes.size();
    if (t.view.offset > size || t.nbytes() > size - t.view.offset) continue;  // validate's structure check says why
    at_[&t] = files[f].bytes.data() + t.view.offset;
  }
  for (auto& f : files) {
    held_ += f.bytes.size();
    files_.push_back(std::move(f));
  }
}

const uint8_t* ResidentTensors::find(const TensorRef& t) {
  const auto it = at_.find(&t);
  if (it == at_.end()) return nullptr;
  reused_ += t.nbytes();
  return it->second;
}

void ResidentTensors::release() {
  at_.clear();
  files_.clear();
  held_ = 0;
}

}  // namespace ckpt::cuda
