// The subcommands, in the order `ckpt help` lists them. Each lives in tools/<name>.cpp, only parses
// options and calls lib/, and defines add_<name>; adding one is one X(name) line here.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#define CKPT_SUBCOMMANDS(X) \
  X(inspect)                \
  X(convert)                \
  X(rechunk)                \
  X(cast)                   \
  X(quantize)               \
  X(marlin)                 \
  X(shard)                  \
  X(run)                    \
  X(merge)                  \
  X(validate)               \
  X(stage)                  \
  X(forward)                \
  X(perplexity)             \
  X(tokenize)               \
  X(pack)                   \
  X(unpack)                 \
  X(gguf)                   \
  X(finalize)

namespace ckpt::cli {

// Each adds its subcommand to `app`; when the subcommand is chosen its callback stores the work
// to run in `action` (so errors are reported by main, in one place).
#define CKPT_DECLARE_SUBCOMMAND(name) void add_##name(CLI::App& app, std::function<int()>& action);
CKPT_SUBCOMMANDS(CKPT_DECLARE_SUBCOMMAND)
#undef CKPT_DECLARE_SUBCOMMAND

}  // namespace ckpt::cli
