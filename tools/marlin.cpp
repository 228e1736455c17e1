// ckpt marlin SRC DST [--undo]; also a `ckpt run` step, after an INT4 quantize.
#include "commands/marlin.h"

#include "steps.h"
#include "subcommands.h"

namespace ckpt::cli {

MakeStep add_marlin_options(CLI::App* cmd) {
  auto undo = std::make_shared<bool>(false);
  cmd->add_flag("--undo", *undo, "Restore the source format, every tensor bit for bit");
  return [undo] {
    Step s;
    MarlinOptions o;
    o.undo = *undo;
    s.plan = [o](const Checkpoint& ck) { return plan_marlin(ck, o).plan; };
    return s;
  };
}

void add_marlin(CLI::App& app, std::function<int()>& action) {
  add_step_subcommand(app, action, "marlin",
                      "Relayout INT4 weights (gptq, awq, compressed-tensors) as vLLM's Marlin repack leaves them, or "
                      "back (--undo)",
                      "INT4 checkpoint (or, with --undo, a ckpt marlin output)", "Output directory", &add_marlin_options);
}

}  // namespace ckpt::cli
