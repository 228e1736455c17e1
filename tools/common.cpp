#include "common.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "checkpoint/hf_cache.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/sizes.h"
#include "plan/executor.h"
#include "interrupt.h"
#include "plan/output_dir.h"
#include "parts.h"
#include "progress.h"

namespace ckpt::cli {

namespace {
std::vector<std::string> g_command_line;
}

const std::vector<std::string>& command_line() { return g_command_line; }

void set_command_line(int argc, char** argv) { g_command_line.assign(argv, argv + argc); }

void usage(const std::string& message) { throw UsageError(message); }

CLI::Validator int_range(int64_t min, int64_t max) {
  const std::string want = max == INT64_MAX ? "≥ " + std::to_string(min)
                                            : "from " + std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [min, max, want](std::string& text) -> std::string {
        int64_t v = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        const bool whole = ec == std::errc() && end == text.data() + text.size();
        if (whole && v >= min && v <= max) return "";
        std::string shown = text.size() > 24 ? text.substr(0, 24) + "..." : text;
        return "must be an integer " + want + ", not " + (whole ? shown : "'" + shown + "'");
      },
      max == INT64_MAX ? "INT>=" + std::to_string(min) : "INT in [" + std::to_string(min) + "," + std::to_string(max) + "]");
}

void add_write_options(CLI::App* cmd, WriteOptions& o) {
  cmd->add_flag("-f,--force", o.force, "Replace the destination if it exists");
  cmd->add_option("-T,--threads", o.threads, "Worker threads (default 0: one per CPU)")->check(int_range(0, 4096));
  cmd->add_flag("--dry-run", o.dry_run, "Check everything the run would check, print the plan as JSON, write nothing");
  cmd->add_flag("-q,--quiet", o.quiet, "No progress and no summary line");
  cmd->add_flag("-v,--verbose", o.verbose, "Also list every output file with its tensors and bytes");
  cmd->add_flag("--json", o.json, "Print the summary as JSON on stdout (human text goes to stderr)");
  cmd->add_flag("--no-sync", o.no_sync, "Do not fsync the output before moving it into place (faster; not crash-safe)");
  add_part_options(cmd, o);
}

bool wants_cuda_device(const std::string& device) {
  if (device == "cpu") return false;
  if (device != "cuda") usage("--device must be cpu or cuda, not '" + device + "'");
#if !defined(CKPT_HAVE_CUDA)
  fail(Errc::kUnsupported, "", "", "this ckpt was built without CUDA (no nvcc): --device cuda is unavailable");
#endif
  return true;
}

uint64_t parse_max_shard_size(const std::string& text) {
  auto max = parse_byte_size(text);
  if (!max) usage("--max-shard-size '" + text + "' is not a size like 5GB, 5GiB, 5G or 500MB");
  return *max;
}

void check_report_path(const std::string& path) {
  namespace fs = std::filesystem;
  if (path == "-") usage("--report takes a file; --json prints the report on stdout");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st) && !fs::is_regular_file(st))
    usage("--report " + path + ": exists and is not a regular file (a directory is never replaced)");
  const fs::path parent = fs::absolute(path, ec).parent_path();
  if (!fs::is_directory(parent, ec)) usage("--report " + path + ": the directory " + parent.string() + " does not exist");
}

void write_report_file(const std::string& path, const std::string& text) {
  check_report_path(path);
  const std::string temp = path + ".ckpt-tmp-" + std::to_string(::getpid());
  std::error_code ec;
  std::filesystem::remove(temp, ec);
  try {
    write_text_file(temp, text);
  } catch (...) {
    std::filesystem::remove(temp, ec);
    throw;
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    std::filesystem::remove(temp, ec);
    fail_errno(path, "cannot move the report into place");
  }
}

int run_plan(const Plan& plan, const std::string& destination, const std::vector<std::string>& sources,
             const WriteOptions& o, const ReportFn& report) {
  // A source named in the Hugging Face cache ("org/name") is protected where it really is.
  std::vector<std::string> protected_paths = sources;
  for (const auto& s : sources)
    if (std::string r = resolve_model_path(s, std::getenv); r != s) protected_paths.push_back(r);
  const auto kind = o.file_destination ? OutputDir::Kind::kFile : OutputDir::Kind::kDirectory;
  if (o.file_destination && wants_parts(o)) usage("--part and --resume write a directory; this command writes a file");
  if (o.dry_run) {
    check_output(destination, o.force, protected_paths, kind, plan.file_names());
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
  eo.file_destination = o.file_destination;
  if (wants_parts(o)) return run_plan_parts(plan, destination, eo, o);
  ExecReport r = execute(plan, destination, eo);
  progress.end();
  if (!o.quiet)
    for (const auto& note : r.notes) std::fprintf(stderr, "ckpt %s: %s\n", plan.command.c_str(), note.c_str());
  double gbps = r.seconds > 0 ? static_cast<double>(r.tensor_bytes) / r.seconds / 1e9 : 0;
  if (o.verbose)
    for (const auto& f : plan.files)
      std::fprintf(stderr, "  %s: %s, %s\n",
                   (o.file_destination ? (std::filesystem::path(destination).parent_path() / f.name).string()
                                       : destination + "/" + f.name).c_str(),
                   count_of(f.tensors.size(), "tensor").c_str(), format_bytes(f.size).c_str());
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
    const std::string rate = format_rate(r.tensor_bytes, r.seconds);
    std::fprintf(stderr, "ckpt %s: %s, %s in %.2f s%s, %s, peak RSS %s -> %s\n", plan.command.c_str(),
                 count_of(r.tensors, "tensor").c_str(), format_bytes(r.tensor_bytes).c_str(), r.seconds,
                 rate.empty() ? "" : (" (" + rate + ")").c_str(), count_of(plan.files.size(), "file").c_str(),
                 format_bytes(r.peak_rss_bytes).c_str(), destination.c_str());
  }
  return kExitOk;
}

}  // namespace ckpt::cli
