// ckpt convert SRC DST [--max-shard-size 5GB] [--key NAME] [--keep-aliases] [--allow-expand] [--no-verify]
#include <cstdio>

#include "commands/convert.h"
#include "commands/rechunk.h"
#include "common.h"
#include "core/error.h"
#include "core/sizes.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_convert(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("convert", "Convert a PyTorch .bin/.pt/.pth checkpoint to safetensors (Hugging Face layout)");
  struct Args {
    std::string src, dst, max_shard = "5GB", key;
    bool keep_aliases = false, allow_expand = false, no_verify = false;
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SRC", a->src, "A .bin/.pt/.pth file, or a directory with pytorch_model.bin or its shards + index")->required();
  cmd->add_option("DST", a->dst, "Output directory")->required();
  cmd->add_option("--max-shard-size", a->max_shard, kMaxShardSizeHelp);
  cmd->add_option("--key", a->key, "Take the tensors from this top-level key (e.g. state_dict, model, module)");
  cmd->add_flag("--keep-aliases", a->keep_aliases, "Write tied weights under every name instead of once");
  cmd->add_flag("--allow-expand", a->allow_expand,
                "Write views that repeat their storage (stride 0, expand()) even when the output is far larger than the file's storages");
  cmd->add_flag("--no-verify", a->no_verify, "Skip the CRC-32 check of the zip records");
  add_write_options(cmd, a->w);
  cmd->callback([&action, a] {
    action = [a] {
      const uint64_t max = parse_max_shard_size(a->max_shard);
      OpenOptions oo;
      oo.verify_crc = !a->no_verify;
      oo.state_dict_key = a->key;
      oo.keep_aliases = a->keep_aliases;
      oo.allow_expand = a->allow_expand;
      oo.prefer_torch = true;
      Checkpoint ck = open_checkpoint(a->src, oo);
      Plan plan = plan_convert(ck, max);
      int code = run_plan(plan, a->dst, {a->src}, a->w);
      // After the run, so that a failure stays the one line on stderr.
      if (!a->w.quiet && !a->w.dry_run)
        for (const auto& [dropped, kept] : ck.aliases)
          std::fprintf(stderr, "ckpt convert: dropped '%s': the same memory as '%s' (tied weights; --keep-aliases keeps both)\n",
                       dropped.c_str(), kept.c_str());
      return code;
    };
  });
}

}  // namespace ckpt::cli
