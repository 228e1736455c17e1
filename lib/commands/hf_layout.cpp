#include "commands/hf_layout.h"

#include <algorithm>
#include <cctype>
#include <numeric>

#include "formats/hf_index.h"

namespace ckpt {

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      x.erase(0, std::min(x.find_first_not_of('0'), x.size() - 1));
      y.erase(0, std::min(y.find_first_not_of('0'), y.size() - 1));
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  if ((a.size() - i) != (b.size() - j)) return a.size() - i < b.size() - j;
  return a < b;  // equal under natural order (e.g. "01" vs "1"): fall back to bytes
}

std::string layer_key(const std::string& name) {
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    size_t end = dot == std::string::npos ? name.size() : dot;
    bool digits = end > start;
    for (size_t k = start; k < end; ++k)
      if (!std::isdigit(static_cast<unsigned char>(name[k]))) digits = false;
    if (digits && end < name.size()) return name.substr(0, end);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return name;
}

std::vector<size_t> assign_shards(const std::vector<std::pair<std::string, uint64_t>>& tensors,
                                  uint64_t max_bytes, size_t* shard_count) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return natural_less(tensors[a].first, tensors[b].first); });
  // Consecutive tensors of one layer form a group.
  std::vector<std::vector<size_t>> groups;
  std::string current;
  for (size_t i : order) {
    std::string key = layer_key(tensors[i].first);
    if (groups.empty() || key != current || key == tensors[i].first) groups.emplace_back();
    groups.back().push_back(i);
    current = key;
  }
  std::vector<size_t> shard(tensors.size());
  size_t s = 0;
  uint64_t used = 0;
  bool empty = true;
  auto place = [&](size_t i) {
    uint64_t b = tensors[i].second;
    if (!empty && used + b > max_bytes) {
      ++s;
      used = 0;
      empty = true;
    }
    shard[i] = s;
    used += b;
    empty = false;
  };
  for (const auto& g : groups) {
    uint64_t total = 0;
    for (size_t i : g) total += tensors[i].second;
    // A layer that fits in a shard but not in what is left of this one starts a new shard.
    if (!empty && total <= max_bytes && used + total > max_bytes) {
      ++s;
      used = 0;
      empty = true;
    }
    for (size_t i : g) place(i);
  }
  *shard_count = tensors.empty() ? 1 : s + 1;
  return shard;
}

void add_hf_safetensors_files(Plan& plan, std::vector<OutputTensor> tensors, uint64_t max_shard_bytes,
                              const Metadata& metadata) {
  std::vector<std::pair<std::string, uint64_t>> sizes;
  for (const auto& t : tensors) sizes.emplace_back(t.name, t.nbytes());
  size_t count = 0;
  std::vector<size_t> shard = assign_shards(sizes, max_shard_bytes, &count);
  std::vector<OutputFile> files(count);
  for (size_t k = 0; k < count; ++k) {
    files[k].name = count == 1 ? "model.safetensors" : shard_file_name("model", k + 1, count, ".safetensors");
    files[k].container = safetensors_container(metadata);
  }
  std::vector<std::pair<std::string, std::string>> weight_map;
  uint64_t total = 0, parameters = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    weight_map.emplace_back(tensors[i].name, files[shard[i]].name);
    total += tensors[i].nbytes();
    parameters += checked_numel(tensors[i].shape).value_or(0);
    files[shard[i]].tensors.push_back(std::move(tensors[i]));
  }
  for (auto& f : files) plan.files.push_back(std::move(f));
  if (count > 1)
    plan.extras.push_back({"model.safetensors.index.json", build_hf_index(total, std::move(weight_map), {{"total_parameters", parameters}}),
                           std::nullopt});
}

void add_side_files(Plan& plan, const Checkpoint& ck, const std::map<std::string, std::string>& replaced) {
  for (const auto& s : ck.side_files) {
    auto it = replaced.find(s.name);
    if (it != replaced.end()) plan.extras.push_back({s.name, it->second, std::nullopt});
    else if (s.content) plan.extras.push_back({s.name, s.content, std::nullopt});
    else plan.extras.push_back({s.name, std::nullopt, s.path});
  }
}

}  // namespace ckpt
