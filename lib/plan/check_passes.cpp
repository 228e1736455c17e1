#include "plan/check_passes.h"

#include <algorithm>
#include <stdexcept>

namespace ckpt {

CheckPasses::CheckPasses(const SourceChecks& checks) {
  for (const auto& c : checks) watches_.push_back({c->file(), c->offset(), c->offset() + c->bytes(), c->start()});
  std::sort(watches_.begin(), watches_.end(),
            [](const Watch& a, const Watch& b) { return a.file != b.file ? a.file < b.file : a.begin < b.begin; });
  for (size_t i = 1; i < watches_.size(); ++i)
    if (watches_[i].file == watches_[i - 1].file && watches_[i].begin < watches_[i - 1].end)
      throw std::logic_error("source checks overlap");
}

void CheckPasses::feed(int file, uint64_t offset, const uint8_t* data, size_t n) const {
  const uint64_t end = offset + n;
  // The first check of `file` that ends after `offset`; the ones after it start in order.
  auto w = std::partition_point(watches_.begin(), watches_.end(),
                                [&](const Watch& x) { return x.file < file || (x.file == file && x.end <= offset); });
  for (; w != watches_.end() && w->file == file && w->begin < end; ++w) {
    const uint64_t from = std::max(offset, w->begin), to = std::min(end, w->end);
    w->pass->feed(from, data + (from - offset), static_cast<size_t>(to - from));
  }
}

void CheckPasses::finish(size_t i, const SourceReader& reader, const CancelToken* cancel) const {
  watches_[i].pass->finish(reader.file(watches_[i].file), cancel);
}

}  // namespace ckpt
