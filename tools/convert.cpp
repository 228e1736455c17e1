// ckpt convert SRC DST [--max-shard-size 5GB] [--key NAME] [--keep-aliases] [--allow-expand] [--no-verify]
#include <cstdio>

#include "commands/convert.h"
#include "steps.h"
#include "subcommands.h"

namespace ckpt::cli {

MakeStep add_convert_options(CLI::App* cmd) {
  struct Args {
    std::string max_shard = "5GB", key;
    bool keep_aliases = false, allow_expand = false, no_verify = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--max-shard-size", a->max_shard, kMaxShardSizeHelp);
  cmd->add_option("--key", a->key, "Take the tensors from this top-level key (e.g. state_dict, model, module)");
  cmd->add_flag("--keep-aliases", a->keep_aliases, "Write tied weights under every name instead of once");
  cmd->add_flag("--allow-expand", a->allow_expand,
                "Write views that repeat their storage (stride 0, expand()) even when the output is far larger than the file's storages");
  cmd->add_flag("--no-verify", a->no_verify, "Skip the CRC-32 check of the zip records");
  return [a] {
    const uint64_t max = parse_max_shard_size(a->max_shard);
    Step s;
    s.open.verify_crc = !a->no_verify;
    s.open.state_dict_key = a->key;
    s.open.keep_aliases = a->keep_aliases;
    s.open.allow_expand = a->allow_expand;
    s.open.prefer_torch = true;
    auto aliases = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
    s.plan = [max, aliases](const Checkpoint& ck) {
      *aliases = ck.aliases;
      return plan_convert(ck, max);
    };
    s.summary = [aliases](const WriteOptions&) {
      for (const auto& [dropped, kept] : *aliases)
        std::fprintf(stderr, "ckpt convert: dropped '%s': the same memory as '%s' (tied weights; --keep-aliases keeps both)\n",
                     dropped.c_str(), kept.c_str());
    };
    return s;
  };
}

void add_convert(CLI::App& app, std::function<int()>& action) {
  add_step_subcommand(app, action, "convert", "Convert a PyTorch .bin/.pt/.pth checkpoint to safetensors (Hugging Face layout)",
                      "A .bin/.pt/.pth file, or a directory with pytorch_model.bin or its shards + index", "Output directory",
                      &add_convert_options);
}

}  // namespace ckpt::cli
