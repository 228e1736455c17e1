#include "formats/safetensors_small.h"

#include <cstdio>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/safetensors.h"

namespace ckpt {

void write_small_safetensors(const std::string& path, std::vector<SmallTensor> tensors) {
  std::vector<HeaderEntry> entries;
  for (const auto& t : tensors) {
    check_writable_name(path, t.name);
    entries.push_back({t.name, t.dtype, t.shape, t.bytes.size()});
  }
  sort_like_reference_writer(entries);
  const std::string header = build_safetensors_header(Metadata{{"format", "pt"}}, entries);
  const std::string tmp = path + ".tmp-ckpt";
  std::remove(tmp.c_str());
  {
    File f = File::create(tmp);
    uint64_t len = header.size();
    uint8_t prefix[8];
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(len >> (8 * i));
    uint64_t off = 0;
    f.pwrite_exact(prefix, 8, off);
    off += 8;
    f.pwrite_exact(header.data(), header.size(), off);
    off += header.size();
    for (const auto& e : entries)
      for (const auto& t : tensors)
        if (t.name == e.name) {
          if (!t.bytes.empty()) f.pwrite_exact(t.bytes.data(), t.bytes.size(), off);
          off += t.bytes.size();
        }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail_errno(path, "cannot rename the written file into place");
}

std::vector<SmallTensor> read_small_safetensors(const std::string& path, uint64_t max_bytes) {
  File f = File::open_read(path);
  if (f.size() > max_bytes) fail(Errc::kInvalidArgument, path, "", "file is larger than " + std::to_string(max_bytes) + " bytes");
  SafetensorsHeader h = read_safetensors_header(f);
  std::vector<SmallTensor> out;
  for (const auto& t : h.tensors) {
    SmallTensor s{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.end - t.begin)};
    if (!s.bytes.empty()) f.pread_exact(s.bytes.data(), s.bytes.size(), h.data_start() + t.begin);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace ckpt
