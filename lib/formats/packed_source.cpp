#include "formats/packed_source.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <stdexcept>

#include "core/error.h"
#include "core/hash.h"

namespace ckpt {

namespace {

std::atomic<uint64_t> g_next_id{1};

// Per-thread decoding state: a zstd context, the compressed bytes of one group, and the last
// decoded group (container id, global group index).
struct ThreadState {
  GroupDecoder decoder;
  std::vector<uint8_t> compressed;
  std::vector<uint8_t> group;
  uint64_t container = 0, group_index = 0;
};

ThreadState& thread_state() {
  thread_local ThreadState s;
  return s;
}

}  // namespace

PackedContainer::PackedContainer(File f, std::unique_ptr<ByteSource> src)
    : file_(std::move(f)),
      src_(src ? std::move(src) : std::make_unique<FileSource>(file_)),  // file_ is initialized first
      path_(src_->name()), index_(read_pack_index(*src_)),
      id_(g_next_id.fetch_add(1)) {}

std::shared_ptr<const PackedContainer> PackedContainer::open(const std::string& path) {
  return std::shared_ptr<const PackedContainer>(new PackedContainer(File::open_read(path), nullptr));
}

std::shared_ptr<const PackedContainer> PackedContainer::from_source(std::unique_ptr<ByteSource> src) {
  return std::shared_ptr<const PackedContainer>(new PackedContainer(File(), std::move(src)));
}

void PackedContainer::decode_group(const PackMember& m, const PackRegion& r, uint64_t g, uint8_t* out) const {
  const PackGroup& group = index_.groups.at(r.first_group + g);
  const uint64_t glen = std::min(kPackGroupBytes, r.length - g * kPackGroupBytes);
  const PackFrame& first = index_.frames[group.first_frame];
  const PackFrame& last = index_.frames[group.first_frame + r.planes - 1];
  ThreadState& ts = thread_state();
  // A group's frames are adjacent in the file: one read.
  ts.compressed.resize(last.offset + last.size - first.offset);
  src_->read(first.offset, ts.compressed.size(), ts.compressed.data());
  EncodedFrame frames[4];
  for (unsigned p = 0; p < r.planes; ++p) frames[p] = {index_.frames[group.first_frame + p].kind, index_.frames[group.first_frame + p].size};
  unsigned p = 0;
  const char* what = "";
  if (ts.decoder.decode_group(ts.compressed.data(), std::span<const EncodedFrame>(frames, r.planes), glen, out, &p, &what) !=
      FrameError::kNone) {
    const PackFrame& f = index_.frames[group.first_frame + p];
    fail(Errc::kPackCorrupt, member_path(m), r.tensor,
         "frame " + std::to_string(g) + " plane " + std::to_string(p) + " (container offset " + std::to_string(f.offset) +
             ") does not decode to its " + std::to_string(glen / r.planes) + " bytes: " + what);
  }
  if (hash_bytes(out, glen) != group.digest)
    fail(Errc::kPackCorrupt, member_path(m), r.tensor,
         "frame " + std::to_string(g) + " decodes to bytes whose digest differs from the recorded one");
}

std::string PackedContainer::read_member(const PackMember& m) const {
  std::string s(m.size, '\0');
  PackedMemberSource(shared_from_this(), m).read(0, m.size, s.data());
  return s;
}

PackedMemberSource::PackedMemberSource(std::shared_ptr<const PackedContainer> c, const PackMember& m)
    : container_(std::move(c)), member_(&m), name_(container_->member_path(m)) {}

void PackedMemberSource::read(uint64_t offset, size_t n, void* out_v) const {
  if (offset > member_->size || n > member_->size - offset) throw std::out_of_range("PackedMemberSource::read past the end");
  if (n == 0) return;
  uint8_t* out = static_cast<uint8_t*>(out_v);
  const auto& regions = member_->regions;
  // The region holding `offset`: the last one starting at or before it.
  auto it = std::upper_bound(regions.begin(), regions.end(), offset,
                             [](uint64_t o, const PackRegion& r) { return o < r.offset; });
  ThreadState& ts = thread_state();
  uint64_t pos = offset;
  const uint64_t end = offset + n;
  for (--it; pos < end; ++it) {
    const PackRegion& r = *it;
    if (r.length == 0) continue;
    while (pos < end && pos < r.offset + r.length) {
      const uint64_t g = (pos - r.offset) / kPackGroupBytes;
      const uint64_t gstart = r.offset + g * kPackGroupBytes;
      const uint64_t glen = std::min(kPackGroupBytes, r.length - g * kPackGroupBytes);
      const uint64_t take = std::min(end, gstart + glen) - pos;
      if (pos == gstart && take == glen) {  // a whole group: decode straight into the output
        container_->decode_group(*member_, r, g, out + (pos - offset));
      } else {
        if (ts.container != container_->id() || ts.group_index != r.first_group + g) {
          ts.group.resize(kPackGroupBytes);
          ts.container = 0;  // invalid until the decode succeeds
          container_->decode_group(*member_, r, g, ts.group.data());
          ts.container = container_->id();
          ts.group_index = r.first_group + g;
        }
        std::copy_n(ts.group.data() + (pos - gstart), take, out + (pos - offset));
      }
      pos += take;
    }
  }
}

uint64_t PackedMemberSource::read_end(uint64_t offset, uint64_t max_end) const {
  if (max_end >= member_->size) return max_end;
  const auto& regions = member_->regions;
  auto it = std::upper_bound(regions.begin(), regions.end(), max_end,
                             [](uint64_t o, const PackRegion& r) { return o < r.offset; });
  const PackRegion& r = *--it;
  const uint64_t group_start = r.offset + (max_end - r.offset) / kPackGroupBytes * kPackGroupBytes;
  return group_start > offset ? group_start : max_end;
}

std::optional<std::pair<std::string, std::string>> split_packed_path(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return std::nullopt;
  std::string container = path.substr(0, slash);
  const std::string suffix = std::string("/") + kPackFileName;
  const bool named = container == kPackFileName ||
                     (container.size() > suffix.size() &&
                      container.compare(container.size() - suffix.size(), suffix.size(), suffix) == 0);
  std::error_code ec;
  if (!named || !std::filesystem::is_regular_file(container, ec)) return std::nullopt;
  return std::make_pair(container, path.substr(slash + 1));
}

namespace {

// A file on disk that its source owns.
class OwnedFileSource : public ByteSource {
 public:
  explicit OwnedFileSource(const std::string& path) : file_(File::open_read(path)), source_(file_) {}
  uint64_t size() const override { return source_.size(); }
  void read(uint64_t offset, size_t n, void* out) const override { source_.read(offset, n, out); }
  const std::string& name() const override { return source_.name(); }

 private:
  File file_;
  FileSource source_;  // reads file_ (declared after it)
};

}  // namespace

std::unique_ptr<ByteSource> open_source_bytes(const std::string& path) {
  if (auto packed = split_packed_path(path)) {
    auto c = PackedContainer::open(packed->first);
    const PackMember* m = c->index().find(packed->second);
    if (!m) fail(Errc::kNoCheckpoint, path, "", "no such file in the packed checkpoint");
    return std::make_unique<PackedMemberSource>(std::move(c), *m);
  }
  return std::make_unique<OwnedFileSource>(path);
}

std::string read_source_text(const std::string& path) {
  const auto src = open_source_bytes(path);
  std::string s(src->size(), '\0');
  if (!s.empty()) src->read(0, s.size(), s.data());
  return s;
}

}  // namespace ckpt
