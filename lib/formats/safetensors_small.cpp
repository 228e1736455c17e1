#include "formats/safetensors_small.h"

#include <cstdio>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/container.h"
#include "formats/safetensors.h"

namespace ckpt {

void write_small_safetensors(const std::string& path, std::vector<SmallTensor> tensors) {
  std::vector<ContainerTensor> entries;
  for (const auto& t : tensors) entries.push_back({t.name, t.dtype, t.shape, t.bytes.size()});
  // The same layout the executor's safetensors outputs get (Plan::finalize), so both are the bytes
  // the reference writer produces.
  const ContainerLayout layout = safetensors_container(Metadata{{"format", "pt"}})->lay_out(path, entries);
  const std::string tmp = path + ".tmp-ckpt";
  std::remove(tmp.c_str());
  {
    File f = File::create(tmp);
    f.pwrite_exact(layout.head.data(), layout.head.size(), 0);
    for (size_t i = 0; i < layout.order.size(); ++i) {
      const auto& bytes = tensors[layout.order[i]].bytes;
      if (!bytes.empty()) f.pwrite_exact(bytes.data(), bytes.size(), layout.offsets[i]);
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
