// ckpt stage SRC [--shm NAME] [--shm-root DIR] [-f] [--threads N] [-q] [--json]
// ckpt stage --drop NAME [--shm-root DIR]
#include "commands/stage.h"

#include <cstdio>
#include <iostream>

#include "common.h"
#include "core/sizes.h"
#include "formats/strict_json.h"
#include "interrupt.h"
#include "progress.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_stage(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "stage", "Copy a checkpoint into /dev/shm once, verified, for every process on the host to map (--drop removes it)");
  struct Args {
    std::string src, name, drop;
    StageOptions o;
    bool quiet = false, json = false;
  };
  auto a = std::make_shared<Args>();
  auto* src = cmd->add_option("SRC", a->src, "Checkpoint directory (a TP/PP output root stages every rank)");
  cmd->add_option("--shm", a->name, "Name of the staged copy (default: SRC's directory name): ROOT/NAME");
  auto* drop = cmd->add_option("--drop", a->drop, "Remove the staged copy NAME instead")->excludes(src);
  cmd->add_option("--shm-root", a->o.shm_root, "Where staged copies live (default /dev/shm)");
  cmd->add_flag("-f,--force", a->o.force, "Replace a staged copy of that name");
  cmd->add_option("--threads", a->o.threads, "Copy and hash threads (default: one per CPU)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("-q,--quiet", a->quiet, "No summary line");
  cmd->add_flag("--json", a->json, "Print the summary as JSON on stdout");
  cmd->callback([&action, a, drop] {
    action = [a, drop] {
      if (!drop->empty()) {
        drop_staged(a->o.shm_root, a->drop);
        if (!a->quiet) std::fprintf(stderr, "ckpt stage: dropped %s\n", staged_path(a->o.shm_root, a->drop).c_str());
        return kExitOk;
      }
      if (a->src.empty()) usage("stage needs SRC (or --drop NAME)");
      TerminalProgress progress(stderr_is_tty() && !a->quiet);
      a->o.cancel = &interrupt_token();
      a->o.progress = progress.observer();
      StageReport r = stage_checkpoint(a->src, stage_name_for(a->src, a->name), a->o);
      progress.end();
      const std::string verified = r.manifest ? count_of(r.verified_files, "weight file") + " verified against the manifest"
                                              : "no ckpt-manifest.json: not verified";
      if (a->json) {
        ojson j = {{"command", "stage"}, {"path", r.path},       {"files", r.files},
                   {"bytes", r.bytes},   {"seconds", r.seconds}, {"verified_files", r.verified_files},
                   {"manifest", r.manifest}, {"free_bytes_before", r.free_bytes}};
        std::cout << j.dump(2) << "\n";
      } else if (!a->quiet) {
        const std::string rate = format_rate(r.bytes, r.seconds);
        std::fprintf(stderr, "ckpt stage: %s, %s in %.2f s%s, %s -> %s\n", count_of(r.files, "file").c_str(),
                     format_bytes(r.bytes).c_str(), r.seconds, rate.empty() ? "" : (" (" + rate + ")").c_str(),
                     verified.c_str(), r.path.c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace ckpt::cli
