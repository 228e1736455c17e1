#include "formats/torch_aliases.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace ckpt {

namespace {

bool is_output_embedding(const std::string& name) {
  const std::string tail = "lm_head.weight";
  return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
         (name.size() == tail.size() || name[name.size() - tail.size() - 1] == '.');
}

using ViewKey = std::tuple<std::string, uint64_t, DType, std::vector<uint64_t>, std::vector<int64_t>>;

}  // namespace

AliasChoice choose_aliases(std::vector<TorchTensor> tensors, std::optional<bool> tie_word_embeddings, bool keep_all) {
  AliasChoice out;
  if (keep_all) {
    out.kept = std::move(tensors);
    return out;
  }
  std::map<ViewKey, std::vector<size_t>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SourceView& v = tensors[i].view;
    groups[{tensors[i].storage_key, v.offset, v.dtype, v.shape, v.effective_strides()}].push_back(i);
  }
  std::set<size_t> drop;
  for (auto& [key, members] : groups) {
    if (members.size() < 2) continue;
    std::vector<size_t> order = members;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors[a].name < tensors[b].name; });
    // Prefer keeping a name that is not the tied output embedding.
    auto kept = std::find_if(order.begin(), order.end(), [&](size_t i) { return !is_output_embedding(tensors[i].name); });
    const size_t keep = kept == order.end() ? order.front() : *kept;
    for (size_t i : order) {
      if (i == keep) continue;
      if (is_output_embedding(tensors[i].name) && tie_word_embeddings == false) continue;  // not re-tied on load
      drop.insert(i);
      out.dropped.emplace_back(tensors[i].name, tensors[keep].name);
    }
  }
  for (size_t i = 0; i < tensors.size(); ++i)
    if (!drop.count(i)) out.kept.push_back(std::move(tensors[i]));
  std::sort(out.dropped.begin(), out.dropped.end());
  return out;
}

}  // namespace ckpt
