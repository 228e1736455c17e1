// ckpt pack SRC DST [--level N] [--threads N]
// ckpt unpack PACKED OUT [--threads N]
#include "commands/pack.h"

#include <cstdio>
#include <iostream>

#include "common.h"
#include "core/sizes.h"
#include "interrupt.h"
#include "subcommands.h"

namespace ckpt::cli {

namespace {

// What pack and unpack both take.
struct PackArgs {
  std::string src, dst;
  PackOptions p;
  bool quiet = false, json = false, no_sync = false;
};

void add_shared_options(CLI::App* cmd, PackArgs& a) {
  cmd->add_option("--threads", a.p.threads, "Worker threads (default: one per CPU)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("-f,--force", a.p.force, "Replace the destination if it exists");
  cmd->add_flag("-q,--quiet", a.quiet, "No summary line");
  cmd->add_flag("--json", a.json, "Print the summary as JSON on stdout");
  cmd->add_flag("--no-sync", a.no_sync, "Do not fsync the output before moving it into place (faster; not crash-safe)");
}

}  // namespace

void add_pack(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("pack", "Pack a checkpoint losslessly (byte planes + zstd) for transport and storage");
  auto a = std::make_shared<PackArgs>();
  cmd->add_option("SRC", a->src, "Checkpoint directory (a TP/PP output root packs each rank)")->required();
  cmd->add_option("DST", a->dst, "Output directory")->required();
  cmd->add_option("--level", a->p.level, "zstd level of every frame, 1-19 (default 1)");
  add_shared_options(cmd, *a);
  cmd->callback([&action, a] {
    action = [a] {
      a->p.cancel = &interrupt_token();
      a->p.sync = !a->no_sync;
      PackReport r = pack_checkpoint(a->src, a->dst, a->p);
      const double gbps = r.seconds > 0 ? static_cast<double>(r.ratios.total.original) / r.seconds / 1e9 : 0;
      if (a->json) {
        ojson j = {{"command", "pack"}, {"destination", a->dst}, {"containers", r.containers},
                   {"seconds", r.seconds}, {"gb_per_s", gbps}, {"peak_rss_bytes", r.peak_rss_bytes},
                   {"threads", r.threads}, {"ratios", pack_ratios_json(r.ratios)}};
        std::cout << j.dump(2) << "\n";
      } else if (!a->quiet) {
        const std::string rate = format_rate(r.ratios.total.original, r.seconds);
        std::fprintf(stderr, "ckpt pack: %s -> %s (%.3fx) in %.2f s%s, %s, peak RSS %s -> %s\n",
                     format_bytes(r.ratios.total.original).c_str(), format_bytes(r.ratios.total.packed).c_str(),
                     r.ratios.total.ratio(), r.seconds, rate.empty() ? "" : (" (" + rate + ")").c_str(),
                     count_of(r.containers.size(), "container").c_str(), format_bytes(r.peak_rss_bytes).c_str(),
                     a->dst.c_str());
      }
      return kExitOk;
    };
  });
}

void add_unpack(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("unpack", "Write every file of a packed checkpoint back, byte for byte");
  auto a = std::make_shared<PackArgs>();
  cmd->add_option("PACKED", a->src, "Directory written by ckpt pack")->required();
  cmd->add_option("OUT", a->dst, "Output directory")->required();
  add_shared_options(cmd, *a);
  cmd->callback([&action, a] {
    action = [a] {
      a->p.cancel = &interrupt_token();
      a->p.sync = !a->no_sync;
      UnpackReport r = unpack_checkpoint(a->src, a->dst, a->p);
      const double gbps = r.seconds > 0 ? static_cast<double>(r.bytes) / r.seconds / 1e9 : 0;
      if (a->json) {
        ojson j = {{"command", "unpack"}, {"destination", a->dst}, {"files", r.files}, {"bytes", r.bytes},
                   {"seconds", r.seconds}, {"gb_per_s", gbps}, {"peak_rss_bytes", r.peak_rss_bytes}, {"threads", r.threads}};
        std::cout << j.dump(2) << "\n";
      } else if (!a->quiet) {
        const std::string rate = format_rate(r.bytes, r.seconds);
        std::fprintf(stderr, "ckpt unpack: %s, %s in %.2f s%s, peak RSS %s -> %s\n", count_of(r.files, "file").c_str(),
                     format_bytes(r.bytes).c_str(), r.seconds, rate.empty() ? "" : (" (" + rate + ")").c_str(),
                     format_bytes(r.peak_rss_bytes).c_str(), a->dst.c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace ckpt::cli
