// ckpt merge DST OUT [--recipe FILE] [--max-shard-size 5GB]
#include "commands/merge.h"

#include "common.h"
#include "core/error.h"
#include "core/sizes.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_merge(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("merge", "Rebuild the unsharded checkpoint from the output of ckpt shard");
  struct Args {
    std::string src, dst, recipe, max_shard = "5GB";
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SHARDED", a->src, "Output directory of ckpt shard (rank-r/ or stage-s/rank-r/ inside)")->required();
  cmd->add_option("OUT", a->dst, "Output directory")->required();
  cmd->add_option("--recipe", a->recipe, "Recipe JSON, when the shard used one outside the recipes directory");
  cmd->add_option("--max-shard-size", a->max_shard, kMaxShardSizeHelp);
  add_write_options(cmd, a->w);
  cmd->callback([&action, a] {
    action = [a] {
      const uint64_t max = parse_max_shard_size(a->max_shard);
      MergeOptions o;
      o.recipe_path = a->recipe;
      o.max_shard_bytes = max;
      Plan plan = plan_merge(a->src, o);
      return run_plan(plan, a->dst, {a->src}, a->w);
    };
  });
}

}  // namespace ckpt::cli
