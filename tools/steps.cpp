#include "steps.h"

namespace ckpt::cli {

const std::map<std::string, StepOptions>& step_commands() {
  static const std::map<std::string, StepOptions> steps = {
#define CKPT_STEP_ENTRY(name) {#name, &add_##name##_options},
      CKPT_STEPS(CKPT_STEP_ENTRY)
#undef CKPT_STEP_ENTRY
  };
  return steps;
}

void add_step_subcommand(CLI::App& app, std::function<int()>& action, const std::string& name,
                         const std::string& description, const std::string& src_help, const std::string& dst_help,
                         StepOptions options) {
  auto* cmd = app.add_subcommand(name, description);
  struct Args {
    std::string src, dst;
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SRC", a->src, src_help)->required();
  cmd->add_option("DST", a->dst, dst_help)->required();
  const MakeStep make = options(cmd);
  add_write_options(cmd, a->w);
  cmd->callback([&action, a, make] {
    action = [a, make] {
      const Step step = make();
      const Checkpoint ck = open_checkpoint(a->src, step.open);
      if (step.run_alone) return step.run_alone(ck, a->src, a->dst, a->w);
      const Plan plan = step.plan(ck);
      const int rc = run_plan(plan, a->dst, {a->src}, a->w, step.report);
      // After the run, so that a failure stays the one line on stderr.
      if (rc == kExitOk && step.summary && !a->w.dry_run && !a->w.quiet) step.summary(a->w);
      return rc;
    };
  });
}

}  // namespace ckpt::cli
