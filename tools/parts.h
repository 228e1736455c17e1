// --part i/n and --resume for every writing command, and `ckpt finalize` (lib/plan/parts.h).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "plan/executor.h"
#include "plan/plan.h"

namespace ckpt::cli {

struct WriteOptions;

// Adds --part and --resume to a writing command.
void add_part_options(CLI::App* cmd, WriteOptions& o);
// True when the options ask for a staged run (--part or --resume).
bool wants_parts(const WriteOptions& o);
// Runs the part --part names (or, for --resume alone, the whole plan as one resumable part, then
// finalize) and prints its summary; returns the exit code.
int run_plan_parts(const Plan& plan, const std::string& destination, ExecOptions eo, const WriteOptions& o);

void add_finalize(CLI::App& app, std::function<int()>& action);

}  // namespace ckpt::cli
