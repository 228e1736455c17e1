#include "validate/checkpoint_bytes.h"

#include <stdexcept>

namespace ckpt::validate {

namespace {

std::vector<std::string> paths_of(const Checkpoint& ck) {
  std::vector<std::string> paths;
  for (const auto& f : ck.files) paths.push_back(f.path);
  return paths;
}

}  // namespace

CheckpointBytes::CheckpointBytes(const Checkpoint& ck) : reader_(paths_of(ck)) {
  for (size_t i = 0; i < ck.files.size(); ++i) {
    maps_.emplace_back();
    if (!reader_.packed(static_cast<int>(i))) maps_.back().emplace(reader_.file(static_cast<int>(i)));
  }
}

const uint8_t* CheckpointBytes::get(int file, uint64_t offset, uint64_t n, std::vector<uint8_t>& buf) const {
  if (const auto& m = maps_.at(static_cast<size_t>(file))) {
    if (offset > m->size() || n > m->size() - offset) throw std::out_of_range("CheckpointBytes::get past the end");
    return m->data() + offset;
  }
  buf.resize(n);
  reader_.read(file, buf.data(), n, offset);
  return buf.data();
}

}  // namespace ckpt::validate
