#include "formats/hf_index.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/file_io.h"

namespace ckpt {

std::vector<std::string> HfIndex::shard_files() const {
  std::set<std::string> s;
  for (const auto& [name, file] : weight_map) s.insert(file);
  return {s.begin(), s.end()};
}

HfIndex read_hf_index(const std::string& path) { return parse_hf_index(path, read_text_file(path)); }

HfIndex parse_hf_index(const std::string& path, std::string_view text) {
  StrictJsonResult r = parse_strict_json(text);
  if (r.duplicate_key) fail(Errc::kIndexInvalid, path, r.duplicate, "tensor listed twice in the index");
  if (!r.ok) fail(Errc::kIndexInvalid, path, "", "not valid JSON: " + r.error);
  if (!r.value.is_object()) fail(Errc::kIndexInvalid, path, "", "the index must be a JSON object");
  HfIndex index;
  auto md = r.value.find("metadata");
  if (md != r.value.end() && !md->is_null()) {
    if (!md->is_object()) fail(Errc::kIndexInvalid, path, "", "\"metadata\" must be an object");
    index.metadata = *md;
  }
  auto wm = r.value.find("weight_map");
  if (wm == r.value.end() || !wm->is_object())
    fail(Errc::kIndexInvalid, path, "", "missing \"weight_map\" object");
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) fail(Errc::kIndexInvalid, path, it.key(), "weight_map value must be a file name");
    std::string file = it->get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos ||
        file == "." || file == "..")
      fail(Errc::kIndexInvalid, path, it.key(), "shard name " + quote(file) + " is not a plain file name in the index's directory");
    index.weight_map.emplace_back(it.key(), file);
  }
  if (index.weight_map.empty()) fail(Errc::kIndexInvalid, path, "", "weight_map is empty");
  return index;
}

void check_index_matches(const HfIndex& index, const std::string& index_path, const Checkpoint& ck) {
  std::map<std::string, std::string> actual;  // name -> shard file name
  for (const auto& t : ck.tensors)
    actual[t.name] = std::filesystem::path(ck.files[t.view.file].path).filename().string();
  std::set<std::string> aliases;
  for (const auto& [name, _] : ck.aliases) {
    actual.erase(name);
    aliases.insert(name);
  }
  std::set<std::string> listed;
  for (const auto& [name, file] : index.weight_map) {
    listed.insert(name);
    auto it = actual.find(name);
    if (aliases.count(name)) continue;
    if (it == actual.end())
      fail(Errc::kIndexMismatch, index_path, name, "listed in the index for " + file + " but no shard holds it");
    if (it->second != file)
      fail(Errc::kIndexMismatch, index_path, name, "listed for " + file + " but found in " + it->second);
  }
  for (const auto& [name, file] : actual)
    if (!listed.count(name))
      fail(Errc::kIndexMismatch, index_path, name, "held by " + file + " but missing from the index");
}

std::string build_hf_index(uint64_t total_size, std::vector<std::pair<std::string, std::string>> weight_map,
                           const ojson& extra_metadata) {
  std::sort(weight_map.begin(), weight_map.end());
  ojson j = ojson::object();
  // transformers writes the index with sorted keys; keep its byte layout.
  std::map<std::string, ojson> md;
  for (auto it = extra_metadata.begin(); it != extra_metadata.end(); ++it) md[it.key()] = *it;
  md["total_size"] = total_size;
  j["metadata"] = ojson::object();
  for (const auto& [k, v] : md) j["metadata"][k] = v;
  j["weight_map"] = ojson::object();
  for (const auto& [name, file] : weight_map) j["weight_map"][name] = file;
  return j.dump(2) + "\n";
}

std::string shard_file_name(const std::string& prefix, size_t index, size_t count, const std::string& ext) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu", index, count);
  return prefix + buf + ext;
}

}  // namespace ckpt
