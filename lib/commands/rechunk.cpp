#include "commands/rechunk.h"

#include "commands/hf_layout.h"

namespace ckpt {

std::vector<std::string> source_paths(const Checkpoint& ck) {
  std::vector<std::string> paths;
  for (const auto& f : ck.files) paths.push_back(f.path);
  return paths;
}

void set_plan_sources(Plan& plan, const Checkpoint& ck) {
  plan.sources = source_paths(ck);
  plan.checks = ck.checks;
}

Plan plan_rechunk(const Checkpoint& ck, uint64_t max_shard_bytes) {
  Plan plan;
  plan.command = "rechunk";
  set_plan_sources(plan, ck);
  std::vector<OutputTensor> tensors;
  for (const auto& t : ck.tensors) tensors.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
  add_hf_safetensors_files(plan, std::move(tensors), max_shard_bytes);
  add_side_files(plan, ck);
  plan.notes["max_shard_bytes"] = max_shard_bytes;
  plan.finalize();
  return plan;
}

}  // namespace ckpt
