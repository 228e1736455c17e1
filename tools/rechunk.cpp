// ckpt rechunk SRC DST [--max-shard-size 5GB]
#include "commands/rechunk.h"
#include "steps.h"
#include "subcommands.h"

namespace ckpt::cli {

MakeStep add_rechunk_options(CLI::App* cmd) {
  auto max_shard = std::make_shared<std::string>("5GB");
  cmd->add_option("--max-shard-size", *max_shard, kMaxShardSizeHelp);
  return [max_shard] {
    const uint64_t max = parse_max_shard_size(*max_shard);
    Step s;
    s.plan = [max](const Checkpoint& ck) { return plan_rechunk(ck, max); };
    return s;
  };
}

void add_rechunk(CLI::App& app, std::function<int()>& action) {
  add_step_subcommand(app, action, "rechunk", "Re-pack a checkpoint into safetensors shards of at most a given size",
                      "Source checkpoint (file or directory)", "Output directory", &add_rechunk_options);
}

}  // namespace ckpt::cli
