#include "commands/convert.h"

#include "commands/hf_layout.h"
#include "commands/rechunk.h"

namespace ckpt {

Plan plan_convert(const Checkpoint& ck, uint64_t max_shard_bytes) {
  Plan plan;
  plan.command = "convert";
  set_plan_sources(plan, ck);
  std::vector<OutputTensor> tensors;
  size_t views = 0;
  for (const auto& t : ck.tensors) {
    if (!t.view.is_contiguous()) ++views;
    tensors.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
  }
  // As safetensors' save_model: every dropped alias names the tensor it shares memory with.
  Metadata metadata = {{"format", "pt"}};
  ojson dropped = ojson::object();
  for (const auto& [name, kept] : ck.aliases) {
    metadata.emplace_back(name, kept);
    dropped[name] = kept;
  }
  add_hf_safetensors_files(plan, std::move(tensors), max_shard_bytes, metadata);
  add_side_files(plan, ck);
  plan.notes["max_shard_bytes"] = max_shard_bytes;
  plan.notes["source_format"] = ck.files.empty() ? "none" : source_format_name(ck.files[0].format);
  plan.notes["strided_views"] = views;
  plan.notes["dropped_aliases"] = dropped;
  plan.finalize();
  return plan;
}

}  // namespace ckpt
