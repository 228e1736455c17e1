// ckpt marlin SRC DST [--undo]
#include "commands/marlin.h"

#include "common.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_marlin(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "marlin", "Relayout INT4 weights (gptq, awq, compressed-tensors) as vLLM's Marlin repack leaves them, or back (--undo)");
  struct Args {
    std::string src, dst;
    bool undo = false;
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SRC", a->src, "INT4 checkpoint (or, with --undo, a ckpt marlin output)")->required();
  cmd->add_option("DST", a->dst, "Output directory")->required();
  cmd->add_flag("--undo", a->undo, "Restore the source format, every tensor bit for bit");
  add_write_options(cmd, a->w);
  cmd->callback([&action, a] {
    action = [a] {
      MarlinOptions o;
      o.undo = a->undo;
      Checkpoint ck = open_checkpoint(a->src);
      MarlinPlan mp = plan_marlin(ck, o);
      return run_plan(mp.plan, a->dst, {a->src}, a->w);
    };
  });
}

}  // namespace ckpt::cli
