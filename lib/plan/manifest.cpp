#include "plan/manifest.h"

#include <filesystem>

#include "core/file_io.h"
#include "core/hash.h"
#include "plan/output_dir.h"

namespace ckpt {

uint64_t file_digest(uint64_t header_digest, const std::vector<uint64_t>& tensor_digests) {
  std::vector<uint64_t> all;
  all.reserve(tensor_digests.size() + 1);
  all.push_back(header_digest);
  all.insert(all.end(), tensor_digests.begin(), tensor_digests.end());
  return combine_digests(all);
}

ojson write_manifest(const OutputDir& out, const ManifestInput& in) {
  ojson m = ojson::object();
  m["tool"] = "ckpt";
  m["version"] = kToolVersion;
  m["command"] = in.command;
  m["command_line"] = in.command_line;
  if (!in.pipeline.is_null()) m["pipeline"] = in.pipeline;
  m["digest"] = "xxh3-64 of 1 MiB blocks, combined (see ckpt README: Manifest)";
  ojson sources = ojson::array();
  for (const auto& s : in.sources) {
    ojson js = ojson::object();
    js["path"] = s;
    std::error_code ec;
    js["size"] = static_cast<uint64_t>(std::filesystem::file_size(s, ec));
    sources.push_back(js);
  }
  m["sources"] = sources;
  ojson files = ojson::object();
  for (const auto& f : in.files) {
    ojson jf = ojson::object();
    std::vector<uint64_t> digests;
    ojson tensors = ojson::object();
    for (const auto& [name, d] : f.tensors) {
      digests.push_back(d);
      tensors[name] = digest_hex(d);
    }
    jf["size"] = f.size;
    jf["digest"] = digest_hex(file_digest(f.header_digest, digests));
    jf["header_digest"] = digest_hex(f.header_digest);
    jf["tensors"] = tensors;
    files[f.name] = jf;
  }
  m["files"] = files;
  ojson extras = ojson::object();
  for (const auto& name : in.extras) {
    std::string content = read_text_file(out.path_of(name));
    ojson je = ojson::object();
    je["size"] = content.size();
    je["digest"] = digest_hex(hash_bytes(content.data(), content.size()));
    extras[name] = je;
  }
  m["extras"] = extras;
  write_text_file(out.path_of(kManifestName), m.dump(2) + "\n");
  return m;
}

}  // namespace ckpt
