// Reading a packed checkpoint (pack_format.h) as a source: every file inside it is a ByteSource
// whose reads decode just the groups they cover, so commands stream from a packed checkpoint
// without unpacking it. A file inside is named "<container path>/<file name>" (such as
// "dst/checkpoint.ckptpack/model.safetensors"): since the container is a regular file, that path
// can name nothing on disk, and open_source_bytes() tells the two apart.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/file_io.h"
#include "formats/byte_source.h"
#include "formats/pack_format.h"

namespace ckpt {

class PackedContainer : public std::enable_shared_from_this<PackedContainer> {
 public:
  static std::shared_ptr<const PackedContainer> open(const std::string& path);
  // A container in memory or any other source (the fuzz target); `src` names it.
  static std::shared_ptr<const PackedContainer> from_source(std::unique_ptr<ByteSource> src);
  const std::string& path() const { return path_; }
  const PackIndex& index() const { return index_; }
  uint64_t size() const { return src_->size(); }
  // The path readers use for a member ("<container>/<name>").
  std::string member_path(const PackMember& m) const { return path_ + "/" + m.name; }
  // Decodes group g of region r of member m into out (the group's length), checking that every
  // frame decodes to exactly its declared length and the group to its digest; any mismatch is an
  // error naming the file, the tensor and the frame.
  void decode_group(const PackMember& m, const PackRegion& r, uint64_t g, uint8_t* out) const;
  // A whole member, decoded (for small files: config.json, the index, tokenizer files).
  std::string read_member(const PackMember& m) const;
  // Unique per open container in this process (keys the per-thread decoded-group cache).
  uint64_t id() const { return id_; }

 private:
  PackedContainer(File f, std::unique_ptr<ByteSource> src);  // src null: read f
  File file_;                        // unopened for from_source()
  std::unique_ptr<ByteSource> src_;
  std::string path_;
  PackIndex index_;
  uint64_t id_;
};

// One file inside a container, read by decoding the groups each read covers (the last decoded
// group is kept per thread, so reads that walk a group in pieces decode it once).
class PackedMemberSource : public ByteSource {
 public:
  PackedMemberSource(std::shared_ptr<const PackedContainer> c, const PackMember& m);
  uint64_t size() const override { return member_->size; }
  void read(uint64_t offset, size_t n, void* out) const override;
  const std::string& name() const override { return name_; }
  // Rounds max_end down to the start of the group holding it (when that is past `offset`).
  uint64_t read_end(uint64_t offset, uint64_t max_end) const override;

 private:
  std::shared_ptr<const PackedContainer> container_;
  const PackMember* member_;
  std::string name_;
};

// Splits "<dir>/checkpoint.ckptpack/<name>" into the container path and the member name when
// the container part is a regular file; nullopt for any other path.
std::optional<std::pair<std::string, std::string>> split_packed_path(const std::string& path);

// The bytes of the file at `path`: one on disk, or one inside a packed checkpoint
// ("<container>/<name>"). A missing file or member is an error naming the path.
std::unique_ptr<ByteSource> open_source_bytes(const std::string& path);
// A whole file read that way (the small ones: config, manifest, tokenizer, README).
std::string read_source_text(const std::string& path);

}  // namespace ckpt
