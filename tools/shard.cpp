// ckpt shard SRC DST --tp N [--pp M] [--ep] [--vocab-padding 64] [--recipe FILE] [--max-shard-size 5GB]
#include "commands/shard.h"

#include "common.h"
#include "core/error.h"
#include "core/sizes.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_shard(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "shard", "Pre-shard a checkpoint for tensor (and pipeline) parallelism: DST/rank-r/ (DST/stage-s/rank-r/ with --pp)");
  struct Args {
    std::string src, dst, recipe, max_shard = "5GB";
    uint64_t tp = 0, pp = 1, vocab_padding = 64;
    bool ep = false;
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SRC", a->src, "Source checkpoint (file or directory)")->required();
  cmd->add_option("DST", a->dst, "Output directory")->required();
  cmd->add_option("--tp", a->tp, "Tensor-parallel degree")->required()->check(int_range(1));
  cmd->add_option("--pp", a->pp, "Pipeline stages (vLLM's default layer partition)")->check(int_range(1));
  cmd->add_flag("--ep", a->ep, "Expert parallel: whole MoE experts distributed over the tp ranks instead of split");
  cmd->add_option("--vocab-padding", a->vocab_padding,
                  "Pad the vocab of embeddings/lm_head to a multiple of this (zero rows; vLLM: 64, 1 = none)")
      ->check(int_range(1));
  cmd->add_option("--recipe", a->recipe, "Recipe JSON to use instead of the one config.json's architecture selects");
  cmd->add_option("--max-shard-size", a->max_shard, kMaxShardSizeHelp);
  add_write_options(cmd, a->w);
  cmd->callback([&action, a] {
    action = [a] {
      const uint64_t max = parse_max_shard_size(a->max_shard);
      Checkpoint ck = open_checkpoint(a->src);
      Recipe recipe = a->recipe.empty() ? Recipe::for_checkpoint(ck) : Recipe::load_file(a->recipe);
      ShardOptions o;
      o.tp = a->tp;
      o.pp = a->pp;
      o.ep = a->ep;
      o.vocab_multiple = a->vocab_padding;
      o.max_shard_bytes = max;
      Plan plan = plan_shard(ck, recipe, o);
      return run_plan(plan, a->dst, {a->src}, a->w);
    };
  });
}

}  // namespace ckpt::cli
