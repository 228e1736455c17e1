// ckpt rechunk SRC DST [--max-shard-size 5GB]
#include "commands/rechunk.h"

#include "common.h"
#include "core/error.h"
#include "core/sizes.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_rechunk(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("rechunk", "Re-pack a checkpoint into safetensors shards of at most a given size");
  struct Args {
    std::string src, dst, max_shard = "5GB";
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SRC", a->src, "Source checkpoint (file or directory)")->required();
  cmd->add_option("DST", a->dst, "Output directory")->required();
  cmd->add_option("--max-shard-size", a->max_shard, kMaxShardSizeHelp);
  add_write_options(cmd, a->w);
  cmd->callback([&action, a] {
    action = [a] {
      const uint64_t max = parse_max_shard_size(a->max_shard);
      Checkpoint ck = open_checkpoint(a->src);
      Plan plan = plan_rechunk(ck, max);
      return run_plan(plan, a->dst, {a->src}, a->w);
    };
  });
}

}  // namespace ckpt::cli
