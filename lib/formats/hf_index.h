// The Hugging Face shard index (model.safetensors.index.json / pytorch_model.bin.index.json):
// {"metadata": {"total_size": N, ...}, "weight_map": {tensor name: shard file name}}.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "formats/strict_json.h"

namespace ckpt {

struct Checkpoint;

struct HfIndex {
  ojson metadata = ojson::object();
  std::vector<std::pair<std::string, std::string>> weight_map;  // in file order
  // The distinct shard file names, sorted.
  std::vector<std::string> shard_files() const;
};

// Reads and checks an index: a JSON object whose weight_map maps names to plain file names in
// the same directory (no paths: an index may not point outside its directory).
HfIndex read_hf_index(const std::string& path);
// The same checks on an index's text (`path` names it in errors).
HfIndex parse_hf_index(const std::string& path, std::string_view text);
// Cross-checks an index against the tensors the shards actually hold, both ways.
void check_index_matches(const HfIndex& index, const std::string& index_path, const Checkpoint& ck);
// The index text as transformers writes it: metadata (total_size plus extra_metadata, such as
// total_parameters) and weight_map with sorted keys, indent 2, trailing newline.
std::string build_hf_index(uint64_t total_size,
                           std::vector<std::pair<std::string, std::string>> weight_map,
                           const ojson& extra_metadata = ojson::object());
// Shard file name: "model-00001-of-00003.safetensors" (prefix "model", ext ".safetensors").
std::string shard_file_name(const std::string& prefix, size_t index, size_t count, const std::string& ext);

}  // namespace ckpt
