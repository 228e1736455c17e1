#include "formats/pack_format.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/hash.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"

namespace ckpt {

namespace {

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

void put_le(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}

[[noreturn]] void bad(const ByteSource& src, const std::string& tensor, const std::string& rule) {
  fail(Errc::kPackInvalid, src.name(), tensor, rule);
}

// The only keys an object may have (a later version adds keys with a new version number).
void check_keys(const ByteSource& src, const ojson& o, std::initializer_list<const char*> allowed, const std::string& what) {
  if (!o.is_object()) bad(src, "", what + " is not a JSON object");
  for (const auto& item : o.items()) {
    // A plain reference, not a structured binding: clang before 16 cannot capture one in a lambda.
    const std::string& k = item.key();
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; }))
      bad(src, "", what + " has an unknown key \"" + k + "\"");
  }
}

uint64_t get_u64(const ByteSource& src, const ojson& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number_unsigned()) bad(src, "", where + ": \"" + key + "\" is missing or not an unsigned integer");
  return it->get<uint64_t>();
}

bool valid_member_name(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos && n.find('\0') == std::string::npos &&
         is_valid_utf8(n);
}

}  // namespace

const PackMember* PackIndex::find(const std::string& name) const {
  for (const auto& m : members)
    if (m.name == name) return &m;
  return nullptr;
}

PackIndex read_pack_index(const ByteSource& src) {
  const uint64_t size = src.size();
  if (size < kPackPrefixBytes)
    bad(src, "", "file is " + std::to_string(size) + " bytes, shorter than the 24-byte prefix");
  uint8_t prefix[kPackPrefixBytes];
  src.read(0, kPackPrefixBytes, prefix);
  if (std::memcmp(prefix, kPackMagic, 8) != 0) bad(src, "", "no CKPTPACK magic: not a packed checkpoint");
  const uint32_t version = le32(prefix + 8);
  if (version != kPackVersion)
    fail(Errc::kUnsupported, src.name(), "", "container version " + std::to_string(version) + " (this ckpt reads version 1)");
  if (le32(prefix + 12) != 0) bad(src, "", "reserved prefix field is not 0");
  const uint64_t json_len = le64(prefix + 16);
  if (json_len > kPackMaxJsonBytes)
    bad(src, "", "JSON header length " + std::to_string(json_len) + " exceeds the limit of 100000000");
  if (json_len > size - kPackPrefixBytes)
    bad(src, "", "JSON header length " + std::to_string(json_len) + " reaches past the end of the " +
                     std::to_string(size) + "-byte file");
  std::string text(json_len, '\0');
  if (json_len) src.read(kPackPrefixBytes, json_len, text.data());
  if (!is_valid_utf8(text)) bad(src, "", "JSON header is not valid UTF-8");
  StrictJsonResult parsed = parse_strict_json(text);
  if (!parsed.ok) bad(src, "", "JSON header is not valid JSON: " + parsed.error);
  const ojson& j = parsed.value;
  check_keys(src, j, {"group_bytes", "files"}, "the JSON header");
  if (get_u64(src, j, "group_bytes", "the JSON header") != kPackGroupBytes)
    fail(Errc::kUnsupported, src.name(), "", "group_bytes is not 1048576");
  auto files = j.find("files");
  if (files == j.end() || !files->is_array()) bad(src, "", "\"files\" is missing or not an array");

  PackIndex idx;
  std::set<std::string> names;
  uint64_t groups = 0, frames = 0;
  // Counts are bounded by the bytes the tables could occupy before anything is allocated.
  const uint64_t table_room = (size - kPackPrefixBytes - json_len) / 8;
  for (const auto& jf : *files) {
    check_keys(src, jf, {"name", "size", "digest", "regions"}, "a file entry");
    PackMember m;
    auto name = jf.find("name");
    if (name == jf.end() || !name->is_string()) bad(src, "", "a file entry has no \"name\" string");
    m.name = name->get<std::string>();
    if (!valid_member_name(m.name)) bad(src, "", "file name \"" + m.name + "\" is not a plain file name");
    if (!names.insert(m.name).second) bad(src, "", "file \"" + m.name + "\" is listed twice");
    const std::string where = "file \"" + m.name + "\"";
    m.size = get_u64(src, jf, "size", where);
    auto digest = jf.find("digest");
    if (digest == jf.end() || !digest->is_string() || !parse_digest_hex(digest->get<std::string>(), &m.digest))
      bad(src, "", where + ": \"digest\" is not 16 lowercase hex digits");
    auto regions = jf.find("regions");
    if (regions == jf.end() || !regions->is_array()) bad(src, "", where + ": \"regions\" is missing or not an array");
    uint64_t at = 0;
    for (const auto& jr : *regions) {
      check_keys(src, jr, {"length", "planes", "dtype", "tensor"}, "a region of " + where);
      PackRegion r;
      r.offset = at;
      r.length = get_u64(src, jr, "length", where);
      const uint64_t planes = get_u64(src, jr, "planes", where);
      auto dt = jr.find("dtype");
      auto tn = jr.find("tensor");
      if (dt != jr.end()) {
        if (!dt->is_string()) bad(src, "", where + ": a region's \"dtype\" is not a string");
        r.dtype = dtype_from_name(dt->get<std::string>());
        if (!r.dtype) bad(src, "", where + ": unknown dtype \"" + dt->get<std::string>() + "\"");
        if (tn == jr.end() || !tn->is_string() || tn->get<std::string>().empty())
          bad(src, "", where + ": a region with a dtype has no tensor name");
        r.tensor = tn->get<std::string>();
      } else if (tn != jr.end()) {
        bad(src, "", where + ": a tensor region has no dtype");
      }
      const unsigned want = r.dtype ? pack_plane_count(*r.dtype) : 1;
      if (planes != want)
        bad(src, r.tensor, where + ": " + std::to_string(planes) + " planes where the dtype has " + std::to_string(want));
      r.planes = want;
      if (r.length % r.planes != 0) bad(src, r.tensor, where + ": region length is not a whole number of elements");
      if (r.length > m.size - at) bad(src, r.tensor, where + ": regions run past the file's size");
      at += r.length;
      r.first_group = groups;
      const uint64_t g = r.group_count();
      if (g > table_room - groups) bad(src, r.tensor, where + ": more groups than the file could hold");
      groups += g;
      if (g * r.planes > table_room - frames) bad(src, r.tensor, where + ": more frames than the file could hold");
      frames += g * r.planes;
      m.regions.push_back(std::move(r));
    }
    if (at != m.size) bad(src, "", where + ": regions cover " + std::to_string(at) + " of its " + std::to_string(m.size) + " bytes");
    idx.members.push_back(std::move(m));
  }
  if (frames + groups > table_room) bad(src, "", "the frame table and digests run past the end of the file");

  // Tables.
  const uint64_t table_at = kPackPrefixBytes + json_len;
  std::vector<uint8_t> table = src.read_vector(table_at, static_cast<size_t>(8 * (frames + groups)));
  idx.data_start = table_at + 8 * (frames + groups);
  idx.frames.resize(frames);
  idx.groups.resize(groups);
  uint64_t at = idx.data_start;
  for (uint64_t gi = 0; gi < groups; ++gi) idx.groups[gi].digest = le64(table.data() + 8 * (frames + gi));
  // Frames follow groups in order; assign each group's first frame and check every frame.
  uint64_t fi = 0;
  for (const auto& m : idx.members) {
    std::vector<uint64_t> digests;
    for (const auto& r : m.regions) {
      for (uint64_t g = 0; g < r.group_count(); ++g) {
        PackGroup& group = idx.groups[r.first_group + g];
        group.first_frame = fi;
        digests.push_back(group.digest);
        const uint64_t plane_len = std::min(kPackGroupBytes, r.length - g * kPackGroupBytes) / r.planes;
        for (unsigned p = 0; p < r.planes; ++p, ++fi) {
          PackFrame& f = idx.frames[fi];
          f.size = le32(table.data() + 8 * fi);
          const uint32_t kind = le32(table.data() + 8 * fi + 4);
          const std::string frame = "file \"" + m.name + "\", frame " + std::to_string(g) + " plane " + std::to_string(p);
          if (kind == static_cast<uint32_t>(FrameKind::kStored)) {
            if (f.size != plane_len)
              bad(src, r.tensor, frame + ": stored frame of " + std::to_string(f.size) + " bytes where the plane has " + std::to_string(plane_len));
          } else if (kind == static_cast<uint32_t>(FrameKind::kZstd)) {
            if (f.size == 0 || f.size >= plane_len)
              bad(src, r.tensor, frame + ": zstd frame of " + std::to_string(f.size) + " bytes is not smaller than its " + std::to_string(plane_len) + "-byte plane");
          } else {
            bad(src, r.tensor, frame + ": unknown frame kind " + std::to_string(kind));
          }
          f.kind = static_cast<FrameKind>(kind);
          f.offset = at;
          if (f.size > size - at) bad(src, r.tensor, frame + ": frame data reaches past the end of the file");
          at += f.size;
        }
      }
    }
    if (combine_digests(digests) != m.digest) bad(src, "", "file \"" + m.name + "\": digest does not match its groups' digests");
  }
  if (at != size) bad(src, "", std::to_string(size - at) + " bytes after the last frame");
  return idx;
}

PackLayout build_pack_layout(std::vector<PackMember>& members) {
  PackLayout l;
  ojson files = ojson::array();
  for (auto& m : members) {
    ojson regions = ojson::array();
    for (auto& r : m.regions) {
      r.first_group = l.group_count;
      l.group_count += r.group_count();
      l.frame_count += r.group_count() * r.planes;
      ojson jr = {{"length", r.length}, {"planes", r.planes}};
      if (r.dtype) {
        jr["dtype"] = std::string(dtype_name(*r.dtype));
        jr["tensor"] = r.tensor;
      }
      regions.push_back(std::move(jr));
    }
    files.push_back({{"name", m.name}, {"size", m.size}, {"digest", digest_hex(m.digest)}, {"regions", std::move(regions)}});
  }
  ojson j = {{"group_bytes", kPackGroupBytes}, {"files", std::move(files)}};
  l.json = j.dump();
  return l;
}

std::string pack_prefix(uint64_t json_len) {
  std::string s(kPackMagic, 8);
  put_le(s, kPackVersion, 4);
  put_le(s, 0, 4);
  put_le(s, json_len, 8);
  return s;
}

std::vector<PackRegion> regions_of_file(const std::string& name, const File& file) {
  const bool st = name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0;
  if (!st) return {PackRegion{0, file.size(), 1, std::nullopt, "", 0}};
  SafetensorsHeader h = read_safetensors_header(file);
  std::vector<PackRegion> out{PackRegion{0, h.data_start(), 1, std::nullopt, "", 0}};
  for (auto& t : h.tensors)
    out.push_back(PackRegion{h.data_start() + t.begin, t.end - t.begin, pack_plane_count(t.dtype), t.dtype, t.name, 0});
  return out;
}

}  // namespace ckpt
