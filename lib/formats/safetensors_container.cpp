#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "core/error.h"
#include "formats/container.h"

namespace ckpt {

namespace {

// The reference writer's order: dtype enum position descending, then name ascending (bytewise).
bool reference_writer_less(const HeaderEntry& a, const HeaderEntry& b) {
  if (a.dtype != b.dtype) return static_cast<int>(a.dtype) > static_cast<int>(b.dtype);
  return a.name < b.name;
}

class SafetensorsContainer : public ContainerWriter {
 public:
  explicit SafetensorsContainer(std::optional<Metadata> metadata) : metadata_(std::move(metadata)) {}

  std::string_view format() const override { return "safetensors"; }

  std::string type_name(const ContainerTensor& t) const override { return std::string(dtype_name(t.dtype)); }

  ContainerLayout lay_out(const std::string& file_label, std::span<const ContainerTensor> tensors) const override {
    std::vector<HeaderEntry> entries;
    for (const auto& t : tensors) {
      check_writable_name(file_label, t.name);
      auto numel = checked_numel(t.shape);
      auto expect = numel ? checked_nbytes(t.dtype, *numel) : std::nullopt;
      if (!expect || *expect != t.nbytes)
        throw std::logic_error("plan: producer size of '" + t.name + "' does not match its dtype and shape");
      entries.push_back({t.name, t.dtype, t.shape, t.nbytes});
    }
    ContainerLayout l;
    l.order.resize(entries.size());
    std::iota(l.order.begin(), l.order.end(), 0);
    std::stable_sort(l.order.begin(), l.order.end(),
                     [&](size_t a, size_t b) { return reference_writer_less(entries[a], entries[b]); });
    std::vector<HeaderEntry> sorted;
    for (size_t i : l.order) sorted.push_back(entries[i]);
    const std::string json = build_safetensors_header(metadata_, sorted);
    if (json.size() > kMaxHeaderSize)
      fail(Errc::kUnsupported, file_label, "", "header would exceed 100000000 bytes; use smaller shards");
    l.head.assign(8, '\0');
    for (int i = 0; i < 8; ++i) l.head[i] = static_cast<char>(static_cast<uint64_t>(json.size()) >> (8 * i));
    l.head += json;
    uint64_t off = l.head.size();
    for (const auto& e : sorted) {
      l.offsets.push_back(off);
      off += e.nbytes;
    }
    l.size = off;
    return l;
  }

 private:
  std::optional<Metadata> metadata_;
};

}  // namespace

std::shared_ptr<const ContainerWriter> safetensors_container(std::optional<Metadata> metadata) {
  return std::make_shared<SafetensorsContainer>(std::move(metadata));
}

}  // namespace ckpt
