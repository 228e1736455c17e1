// ckpt finalize DST; --part i/n / --resume of the writing commands.
#include "parts.h"

#include <cstdio>
#include <iostream>

#include "common.h"
#include "interrupt.h"
#include "progress.h"
#include "core/error.h"
#include "core/sizes.h"
#include "plan/parts.h"
#include "subcommands.h"

namespace ckpt::cli {

namespace {

// The command line a staged run records for the final manifest: the one a single run would have
// (without --part and --resume), so n parts + finalize give the same bytes as one run.
std::vector<std::string> single_run_command_line() {
  std::vector<std::string> out;
  const auto& all = command_line();
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == "--resume" || all[i].rfind("--part=", 0) == 0) continue;
    if (all[i] == "--part") {
      ++i;
      continue;
    }
    out.push_back(all[i]);
  }
  return out;
}

void end_progress(const ExecOptions& eo) {
  if (eo.progress) eo.progress->end();
}

void print_finalized(const std::string& command, const std::string& destination, const ExecReport& r,
                     const WriteOptions& o) {
  if (o.json) {
    ojson j = ojson::object();
    j["command"] = command;
    j["destination"] = destination;
    j["tensors"] = r.tensors;
    j["bytes"] = r.tensor_bytes;
    j["seconds"] = r.seconds;
    j["peak_rss_bytes"] = r.peak_rss_bytes;
    j["threads"] = r.threads;
    std::cout << j.dump(2) << "\n";
  } else if (!o.quiet) {
    for (const auto& note : r.notes) std::fprintf(stderr, "ckpt %s: %s\n", command.c_str(), note.c_str());
    std::fprintf(stderr, "ckpt %s: %s, %s verified and put into place in %.2f s, peak RSS %s -> %s\n",
                 command.c_str(), count_of(r.tensors, "tensor").c_str(), format_bytes(r.tensor_bytes).c_str(), r.seconds,
                 format_bytes(r.peak_rss_bytes).c_str(), destination.c_str());
  }
}

}  // namespace

void add_part_options(CLI::App* cmd, WriteOptions& o) {
  cmd->add_option("--part", o.part,
                  "Write only part I of N (0 <= I < N, whole output files of about equal bytes) into DST.ckpt-parts; "
                  "`ckpt finalize DST` puts the parts together");
  cmd->add_flag("--resume", o.resume,
                "Keep the files a killed run of the same command completed (verified by their digests) and write the rest");
}

bool wants_parts(const WriteOptions& o) { return !o.part.empty() || o.resume; }

int run_plan_parts(const Plan& plan, const std::string& destination, ExecOptions eo, const WriteOptions& o) {
  PartSpec part;
  if (!o.part.empty()) {
    auto p = parse_part(o.part);
    if (!p) fail(Errc::kInvalidArgument, "", "", "--part '" + o.part + "' is not I/N with 0 <= I < N (0/8 ... 7/8)");
    part = *p;
  }
  eo.command_line = single_run_command_line();
  PartReport r = run_part(plan, destination, part, eo);
  if (o.part.empty()) {  // --resume alone: the one part is the whole run
    ExecReport f = finalize_parts(destination, eo);
    end_progress(eo);
    print_finalized(plan.command, destination, f, o);
    return kExitOk;
  }
  end_progress(eo);
  const std::string label = std::to_string(part.index) + "/" + std::to_string(part.count);
  if (o.json) {
    ojson j = ojson::object();
    j["command"] = plan.command;
    j["part"] = label;
    j["staging"] = staging_path(destination);
    j["files"] = r.files;
    j["files_reused"] = r.reused;
    j["bytes_written"] = r.bytes_written;
    j["bytes_reused"] = r.bytes_reused;
    j["already_done"] = r.already_done;
    j["seconds"] = r.seconds;
    std::cout << j.dump(2) << "\n";
  } else if (!o.quiet) {
    if (r.already_done)
      std::fprintf(stderr, "ckpt %s: part %s had already finished (%s); nothing to do\n", plan.command.c_str(),
                   label.c_str(), count_of(r.files, "file").c_str());
    else
      std::fprintf(stderr, "ckpt %s: part %s: %s (%zu kept from an earlier run), %s written in %.2f s -> %s\n",
                   plan.command.c_str(), label.c_str(), count_of(r.files, "file").c_str(), r.reused,
                   format_bytes(r.bytes_written).c_str(),
                   r.seconds, staging_path(destination).c_str());
  }
  return kExitOk;
}

void add_finalize(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "finalize", "Put the parts of a --part i/n job together: check them, write index, config and manifest, move into place");
  struct Args {
    std::string dst;
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("DST", a->dst, "The destination the parts were run for (their staging is DST.ckpt-parts)")->required();
  cmd->add_flag("-f,--force", a->w.force, "Replace the destination if it exists");
  cmd->add_option("-T,--threads", a->w.threads, "Hashing threads (default 0: one per CPU)")->check(int_range(0, 4096));
  cmd->add_flag("-q,--quiet", a->w.quiet, "No progress and no summary line");
  cmd->add_flag("--json", a->w.json, "Print the summary as JSON on stdout");
  cmd->add_flag("--no-sync", a->w.no_sync, "Do not fsync the output before moving it into place (faster; not crash-safe)");
  cmd->callback([&action, a] {
    action = [a] {
      ExecOptions eo;
      eo.threads = a->w.threads;
      eo.force = a->w.force;
      eo.sync = !a->w.no_sync;
      eo.cancel = &interrupt_token();
      TerminalProgress progress(!a->w.quiet && stderr_is_tty());
      eo.progress = progress.observer();
      ExecReport r = finalize_parts(a->dst, eo);
      progress.end();
      print_finalized("finalize", a->dst, r, a->w);
      return kExitOk;
    };
  });
}

}  // namespace ckpt::cli
