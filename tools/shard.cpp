// ckpt shard SRC DST --tp N [--pp M] [--ep] [--vocab-padding 64] [--recipe FILE] [--max-shard-size 5GB]
#include "commands/shard.h"
#include "steps.h"
#include "subcommands.h"

namespace ckpt::cli {

MakeStep add_shard_options(CLI::App* cmd) {
  struct Args {
    std::string recipe, max_shard = "5GB";
    uint64_t tp = 0, pp = 1, vocab_padding = 64;
    bool ep = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--tp", a->tp, "Tensor-parallel degree")->required()->check(int_range(1));
  cmd->add_option("--pp", a->pp, "Pipeline stages (vLLM's default layer partition)")->check(int_range(1));
  cmd->add_flag("--ep", a->ep, "Expert parallel: whole MoE experts distributed over the tp ranks instead of split");
  cmd->add_option("--vocab-padding", a->vocab_padding,
                  "Pad the vocab of embeddings/lm_head to a multiple of this (zero rows; vLLM: 64, 1 = none)")
      ->check(int_range(1));
  cmd->add_option("--recipe", a->recipe, "Recipe JSON to use instead of the one config.json's architecture selects");
  cmd->add_option("--max-shard-size", a->max_shard, kMaxShardSizeHelp);
  return [a] {
    ShardOptions o;
    o.tp = a->tp;
    o.pp = a->pp;
    o.ep = a->ep;
    o.vocab_multiple = a->vocab_padding;
    o.max_shard_bytes = parse_max_shard_size(a->max_shard);
    Step s;
    s.plan = [o, recipe = a->recipe](const Checkpoint& ck) {
      return plan_shard(ck, recipe.empty() ? Recipe::for_checkpoint(ck) : Recipe::load_file(recipe), o);
    };
    return s;
  };
}

void add_shard(CLI::App& app, std::function<int()>& action) {
  add_step_subcommand(
      app, action, "shard",
      "Pre-shard a checkpoint for tensor (and pipeline) parallelism: DST/rank-r/ (DST/stage-s/rank-r/ with --pp)",
      "Source checkpoint (file or directory)", "Output directory", &add_shard_options);
}

}  // namespace ckpt::cli
