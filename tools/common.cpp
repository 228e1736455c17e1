#include "common.h"

#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "core/sizes.h"
#include "plan/executor.h"
#include "interrupt.h"
#include "progress.h"

namespace ckpt::cli {

namespace {
std::vector<std::string> g_command_line;
}

const std::vector<std::string>& command_line() { return g_command_line; }

void set_command_line(int argc, char** argv) { g_command_line.assign(argv, argv + argc); }

void add_write_options(CLI::App* cmd, WriteOptions& o) {
  cmd->add_flag("--force", o.force, "Replace the destination if it exists");
  cmd->add_option("--threads", o.threads, "Worker threads (default: one per CPU)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--dry-run", o.dry_run, "Print the plan as JSON and write nothing");
  cmd->add_flag("-q,--quiet", o.quiet, "No progress and no summary line");
  cmd->add_flag("--json", o.json, "Print the summary as JSON on stdout");
  cmd->add_flag("--no-sync", o.no_sync, "Do not fsync the output before moving it into place (faster; not crash-safe)");
}

bool wants_cuda_device(const std::string& device) {
  if (device == "cpu") return false;
  if (device != "cuda") fail(Errc::kInvalidArgument, "", "", "--device must be cpu or cuda, not '" + device + "'");
#if !defined(CKPT_HAVE_CUDA)
  fail(Errc::kUnsupported, "", "", "this ckpt was built without CUDA (no nvcc): --device cuda is unavailable");
#endif
  return true;
}

uint64_t parse_max_shard_size(const std::string& text) {
  auto max = parse_byte_size(text);
  if (!max) fail(Errc::kInvalidArgument, "", "", "--max-shard-size '" + text + "' is not a size like 5GB or 500MiB");
  return *max;
}

int run_plan(const Plan& plan, const std::string& destination, const std::vector<std::string>& protected_paths,
             const WriteOptions& o, const ReportFn& report) {
  if (o.dry_run) {
    std::cout << plan.to_json().dump(2) << "\n";
    return kExitOk;
  }
  ExecOptions eo;
  eo.threads = o.threads;
  eo.force = o.force;
  eo.sync = !o.no_sync;
  TerminalProgress progress(!o.quiet && stderr_is_tty());
  eo.progress = progress.observer();
  eo.cancel = &interrupt_token();
  eo.protected_paths = protected_paths;
  eo.command_line = command_line();
  ExecReport r = execute(plan, destination, eo);
  progress.end();
  if (!o.quiet)
    for (const auto& note : r.notes) std::fprintf(stderr, "ckpt %s: %s\n", plan.command.c_str(), note.c_str());
  double gbps = r.seconds > 0 ? static_cast<double>(r.tensor_bytes) / r.seconds / 1e9 : 0;
  if (o.json) {
    ojson j = ojson::object();
    j["command"] = plan.command;
    j["destination"] = destination;
    j["tensors"] = r.tensors;
    j["bytes"] = r.tensor_bytes;
    j["seconds"] = r.seconds;
    j["gb_per_s"] = gbps;
    j["peak_rss_bytes"] = r.peak_rss_bytes;
    j["threads"] = r.threads;
    j["files"] = plan.files.size();
    if (!plan.notes.empty()) j["notes"] = plan.notes;
    if (report) j["report"] = report();
    std::cout << j.dump(2) << "\n";
  } else if (!o.quiet) {
    std::fprintf(stderr, "ckpt %s: %zu tensors, %s in %.2f s (%.2f GB/s), %zu files, peak RSS %s -> %s\n",
                 plan.command.c_str(), r.tensors, format_bytes(r.tensor_bytes).c_str(), r.seconds, gbps,
                 plan.files.size(), format_bytes(r.peak_rss_bytes).c_str(), destination.c_str());
  }
  return kExitOk;
}

}  // namespace ckpt::cli
