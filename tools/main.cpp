// ckpt: turns LLM checkpoints into deployment-ready ones. This file only dispatches.
#include <cstdio>
#include <functional>

#include "common.h"
#include "core/error.h"
#include "interrupt.h"
#include "plan/manifest.h"
#include "subcommands.h"

int main(int argc, char** argv) {
  using namespace ckpt::cli;
  CLI::App app{"ckpt: offline LLM checkpoint conversion, quantization, sharding and validation"};
  app.set_version_flag("--version", ckpt::kToolVersion);
  app.require_subcommand(1);
  std::function<int()> action;
  add_inspect(app, action);
  add_rechunk(app, action);
  add_shard(app, action);
  add_merge(app, action);
  add_validate(app, action);
  add_convert(app, action);
  add_quantize(app, action);
  add_cast(app, action);
  add_forward(app, action);
  add_perplexity(app, action);
  set_command_line(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  install_interrupt_handlers();
  try {
    return action();
  } catch (const ckpt::Error& e) {
    std::fprintf(stderr, "ckpt: error: %s\n", e.what());
    if (e.code() == ckpt::Errc::kInterrupted) return interrupted_exit_code();
    return e.code() == ckpt::Errc::kInvalidArgument ? kExitUsage : kExitFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt: error: %s\n", e.what());
    return kExitFailed;
  }
}
