#include "steps.h"

#include <filesystem>

namespace ckpt::cli {

const std::map<std::string, StepOptions>& step_commands() {
  static const std::map<std::string, StepOptions> steps = {
#define CKPT_STEP_ENTRY(name) {#name, &add_##name##_options},
      CKPT_STEPS(CKPT_STEP_ENTRY)
#undef CKPT_STEP_ENTRY
  };
  return steps;
}

std::string output_file_name(const std::string& dst) {
  if (dst.empty() || dst.back() == '/') usage("DST names the output file, not a directory: '" + dst + "'");
  return std::filesystem::path(dst).filename().string();
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
      WriteOptions w = a->w;
      w.file_destination = static_cast<bool>(step.plan_file);
      const std::string file_name = w.file_destination ? output_file_name(a->dst) : "";
      const Checkpoint ck = open_checkpoint(a->src, step.open);
      if (step.run_alone) return step.run_alone(ck, a->src, a->dst, a->w);
      const Plan plan = w.file_destination ? step.plan_file(ck, file_name) : step.plan(ck);
      const int rc = run_plan(plan, a->dst, {a->src}, w, step.report);
      // After the run, so that a failure stays the one line on stderr.
      if (rc == kExitOk && step.summary && !w.dry_run && !w.quiet) step.summary(w);
      return rc;
    };
  });
}

}  // namespace ckpt::cli
