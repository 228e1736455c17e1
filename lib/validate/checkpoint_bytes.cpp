#include "validate/checkpoint_bytes.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

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

const uint8_t* CheckpointBytes::get_parallel(int file, uint64_t offset, uint64_t n, std::unique_ptr<uint8_t[]>& buf,
                                             const Workers& workers, uint64_t piece_bytes) const {
  if (const auto& m = maps_.at(static_cast<size_t>(file))) {
    if (offset > m->size() || n > m->size() - offset) throw std::out_of_range("CheckpointBytes::get_parallel past the end");
    return m->data() + offset;
  }
  const uint64_t end = offset + n;
  if (offset > reader_.size(file) || n > reader_.size(file) - offset)
    throw std::out_of_range("CheckpointBytes::get_parallel past the end");
  std::vector<std::pair<uint64_t, uint64_t>> pieces;  // [begin, end) in the file
  for (uint64_t off = offset; off < end;) {
    const uint64_t want = std::min(end, off + std::max<uint64_t>(piece_bytes, 1));
    uint64_t stop = reader_.read_end(file, off, want);
    if (stop <= off) stop = want;  // a piece inside one group: that group is decoded twice
    pieces.emplace_back(off, stop);
    off = stop;
  }
  buf.reset(new uint8_t[std::max<uint64_t>(n, 1)]);  // every byte is decoded into: no zero fill
  uint8_t* out = buf.get();
  parallel_for(pieces.size(), workers, [&](size_t i) {
    reader_.read(file, out + (pieces[i].first - offset), pieces[i].second - pieces[i].first, pieces[i].first);
  });
  return out;
}

}  // namespace ckpt::validate
