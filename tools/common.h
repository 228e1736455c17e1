// What every writing subcommand shares: the common options (--force, --threads, --dry-run,
// --quiet), running a plan, and the closing summary line.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "plan/plan.h"

namespace ckpt::cli {

// Exit codes (README: Exit codes).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;   // bad input, or a check failed
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNoGpu = 3;    // validate: GPU phases could not run

struct WriteOptions {
  bool force = false;
  int threads = 0;
  bool dry_run = false;
  bool quiet = false;
  bool json = false;
  bool no_sync = false;
};

void add_write_options(CLI::App* cmd, WriteOptions& o);
// The value of --device: true for "cuda", false for "cpu"; an error for anything else, and for
// "cuda" in a build without CUDA.
bool wants_cuda_device(const std::string& device);
// The value of --max-shard-size ("5GB" = 5e9 bytes, "5GiB" = 5*2^30); a usage error otherwise.
uint64_t parse_max_shard_size(const std::string& text);
// Command-specific results known only after execution (a quantizer's errors, say): put under
// "report" in the --json summary.
using ReportFn = std::function<ojson()>;

// Prints the plan (--dry-run) or executes it and prints the summary line; returns the exit code.
int run_plan(const Plan& plan, const std::string& destination, const std::vector<std::string>& protected_paths,
             const WriteOptions& o, const ReportFn& report = {});

// The command line as given, recorded in manifests.
const std::vector<std::string>& command_line();
void set_command_line(int argc, char** argv);

}  // namespace ckpt::cli
