// The packed checkpoint container (`ckpt pack`): one file, `checkpoint.ckptpack`, holding every
// file of a checkpoint directory, tensors split into byte planes and zstd frames (pack_codec.h).
// Layout (all integers little-endian):
//
//   0      8 bytes   magic "CKPTPACK"
//   8      u32       version (1)
//   12     u32       reserved, 0
//   16     u64       J: length of the JSON header (at most kPackMaxJsonBytes)
//   24     J bytes   JSON header: {"group_bytes": 1048576, "files": [{"name", "size", "digest",
//                    "regions": [{"length", "planes", "dtype"?, "tensor"?}, ...]}, ...]}
//          F x 8     frame table: per frame u32 stored size, u32 kind (0 stored, 1 zstd)
//          G x 8     group digests: XXH3-64 of each group's original bytes
//          ...       frame data, frames back to back in table order, ending at end of file
//
// Each file is a sequence of regions that cover it exactly, in order (a safetensors file: its
// 8 + N header bytes, then one region per tensor in data order; any other file: one region).
// A region of `length` bytes and k planes is ceil(length / group_bytes) groups; group g is k
// frames (plane order). G and F follow from the regions, so the table's size is known from the
// JSON alone, and the frames' offsets from the sizes before it: frames are contiguous and cannot
// overlap (the safetensors rule, huggingface/safetensors attacks/README.md, "Proposal 4"). A file's
// digest is core/hash.h's combine over its groups' digests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/byte_source.h"
#include "formats/pack_codec.h"

namespace ckpt {

inline constexpr char kPackMagic[8] = {'C', 'K', 'P', 'T', 'P', 'A', 'C', 'K'};
inline constexpr uint32_t kPackVersion = 1;
inline constexpr uint64_t kPackPrefixBytes = 24;
// The JSON header's cap, the safetensors reader's (a 100 MB header is already ~1M tensors).
inline constexpr uint64_t kPackMaxJsonBytes = 100'000'000;
inline constexpr const char* kPackFileName = "checkpoint.ckptpack";

struct PackRegion {
  uint64_t offset = 0;  // in the original file
  uint64_t length = 0;
  unsigned planes = 1;
  std::optional<DType> dtype;  // tensor regions
  std::string tensor;          // tensor name; empty for other bytes (headers, side files)
  uint64_t first_group = 0;    // index of its first group in PackIndex::groups
  uint64_t group_count() const { return (length + kPackGroupBytes - 1) / kPackGroupBytes; }
};

struct PackMember {
  std::string name;  // a plain file name: no '/', not "." or ".."
  uint64_t size = 0;
  uint64_t digest = 0;
  std::vector<PackRegion> regions;
};

struct PackFrame {
  uint64_t offset = 0;  // absolute offset in the container
  uint32_t size = 0;
  FrameKind kind = FrameKind::kStored;
};

struct PackGroup {
  uint64_t first_frame = 0;
  uint64_t digest = 0;
};

struct PackIndex {
  std::vector<PackMember> members;
  std::vector<PackFrame> frames;
  std::vector<PackGroup> groups;
  uint64_t data_start = 0;
  const PackMember* find(const std::string& name) const;
};

// Reads and validates a container's header and tables (never frame data). Every count, offset
// and length is checked before it is used or allocated from; errors name `src` and the rule.
PackIndex read_pack_index(const ByteSource& src);

// The writer's side: members with their regions (offset, length, planes, dtype, tensor; digests
// and first_group filled in later) give the JSON header and the table sizes.
struct PackLayout {
  std::string json;        // the JSON header, exactly as written
  uint64_t frame_count = 0;
  uint64_t group_count = 0;
  uint64_t data_start() const { return kPackPrefixBytes + json.size() + 8 * (frame_count + group_count); }
};
// Assigns first_group to every region and builds the header from the members (whose digests must
// be final: the writer builds the layout once with zero digests to size the header, and again at
// the end; a digest is always 16 hex digits, so the length cannot change).
PackLayout build_pack_layout(std::vector<PackMember>& members);
// The 24-byte prefix for a JSON header of `json_len` bytes.
std::string pack_prefix(uint64_t json_len);

// The regions of one file: a safetensors file (by name) is split at its header and tensors;
// anything else is one raw region. The safetensors header is validated by the strict reader.
std::vector<PackRegion> regions_of_file(const std::string& name, const File& file);

}  // namespace ckpt
