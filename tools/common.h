// What every subcommand shares: usage errors and clean range checks, the common options of the
// writing commands (-f/--force, -T/--threads, --dry-run, -q/--quiet, -v/--verbose, --json),
// running a plan, the closing summary, and the --json / --report conventions.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "plan/plan.h"

namespace ckpt::cli {

// Exit codes (README: Exit codes).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;   // bad input, or a check failed
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNoGpu = 3;    // validate: GPU phases could not run (no GPU, or a model the runtime cannot run)

// A command line that cannot work (an option that cannot apply, a bad value): main prints
// "ckpt: error: MESSAGE [usage]" and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
[[noreturn]] void usage(const std::string& message);

// A CLI11 check that the value is an integer in [min, max]; failures read "--tp: must be ≥ 1,
// not 0" (without max: INT64_MAX).
CLI::Validator int_range(int64_t min, int64_t max = INT64_MAX);

struct WriteOptions {
  bool force = false;
  int threads = 0;
  bool dry_run = false;
  bool quiet = false;
  bool verbose = false;
  bool json = false;
  bool no_sync = false;
  std::string part;     // --part i/n (tools/parts.h)
  bool resume = false;  // --resume
  // Not an option: the destination names the output file (ckpt gguf), not a directory.
  bool file_destination = false;
};

void add_write_options(CLI::App* cmd, WriteOptions& o);
// The value of --device: true for "cuda", false for "cpu"; an error for anything else, and for
// "cuda" in a build without CUDA.
bool wants_cuda_device(const std::string& device);
// The value of --max-shard-size (lib/core/sizes.h: "5GB" = 5e9 bytes, "5GiB" = 5*2^30, "5G" = 5GB);
// a usage error otherwise.
uint64_t parse_max_shard_size(const std::string& text);
inline constexpr const char* kMaxShardSizeHelp =
    "Largest shard, in tensor bytes: 5GB = 5*10^9, 5GiB = 5*2^30, 5G = 5GB as llama.cpp (default 5GB)";
// Command-specific results known only after execution (a quantizer's errors, say): put under
// "report" in the --json summary.
using ReportFn = std::function<ojson()>;

// Prints the plan (--dry-run, after every check the run would make about the destination) or
// executes it and prints the summary; returns the exit code.
int run_plan(const Plan& plan, const std::string& destination, const std::vector<std::string>& protected_paths,
             const WriteOptions& o, const ReportFn& report = {});

// --report FILE: refused before any work when FILE is a directory (or anything but a regular
// file) or its directory does not exist, so a long run never fails at its end.
void check_report_path(const std::string& path);
// Writes the report into a temporary sibling and renames it over FILE: a reader never sees half
// a report, and nothing but a regular file is ever replaced.
void write_report_file(const std::string& path, const std::string& text);

// The command line as given, recorded in manifests.
const std::vector<std::string>& command_line();
void set_command_line(int argc, char** argv);

}  // namespace ckpt::cli
