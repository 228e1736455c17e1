// The writing commands that plan from one source checkpoint (convert, rechunk, cast, quantize,
// marlin, shard, gguf) as steps: one function per command binds its own options (everything but
// SRC, DST and the write options) to a CLI::App and returns how to make the step once they are parsed. The
// subcommand and `ckpt run` (tools/run.cpp, a pipeline file's steps) both use it, so a step in a
// pipeline takes exactly the options, defaults and checks of its subcommand.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <string>

#include "checkpoint/checkpoint.h"
#include "common.h"
#include "interrupt.h"
#include "plan/plan.h"

namespace ckpt::cli {

struct Step {
  OpenOptions open = open_options();                // how the step opens SRC when it comes first
  std::function<Plan(const Checkpoint&)> plan;      // the command's planning
  // Instead of `plan`, for a command whose output is one file (gguf): DST names that file, and
  // the plan is made for its name; in a pipeline the step can only come last.
  std::function<Plan(const Checkpoint&, const std::string& file_name)> plan_file;
  // Instead of `plan`, for work that is not one pass over the source (calibrated quantization
  // runs the model layer by layer and writes as it goes): the subcommand runs it, a pipeline
  // refuses it.
  std::function<int(const Checkpoint&, const std::string& src, const std::string& dst, const WriteOptions&)> run_alone;
  ReportFn report;                                  // after execution: the command's --json "report"
  std::function<void(const WriteOptions&)> summary;  // after a successful run: its closing lines
};

// Parses the options bound by StepOptions (after CLI11 has parsed them) into a step: usage
// errors are raised here, as the subcommand raises them.
using MakeStep = std::function<Step()>;
using StepOptions = MakeStep (*)(CLI::App* cmd);

#define CKPT_STEPS(X) \
  X(convert)          \
  X(rechunk)          \
  X(cast)             \
  X(quantize)         \
  X(marlin)           \
  X(shard)            \
  X(gguf)

#define CKPT_DECLARE_STEP(name) MakeStep add_##name##_options(CLI::App* cmd);
CKPT_STEPS(CKPT_DECLARE_STEP)
#undef CKPT_DECLARE_STEP

// Every step command by name.
const std::map<std::string, StepOptions>& step_commands();

// The name of the file a Step::plan_file writes, from DST; a usage error for a DST that names a
// directory (a trailing '/').
std::string output_file_name(const std::string& dst);

// A step subcommand: `ckpt NAME SRC DST [options] [write options]` running the step alone.
void add_step_subcommand(CLI::App& app, std::function<int()>& action, const std::string& name,
                         const std::string& description, const std::string& src_help, const std::string& dst_help,
                         StepOptions options);

}  // namespace ckpt::cli
