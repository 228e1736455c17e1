// ckpt: turns LLM checkpoints into deployment-ready ones. This file parses the command line with
// the definition in app.cpp, runs the chosen subcommand and turns every failure into one line
// "ckpt: error: ... [code]" and the README's exit code.
#include <cstdio>
#include <functional>

#include "app.h"
#include "common.h"
#include "core/error.h"
#include "interrupt.h"

namespace {

using namespace ckpt::cli;

int usage_error(const std::string& message) {
  std::fprintf(stderr, "ckpt: error: %s [usage]\n", message.c_str());
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered stdout, so that what goes to stdout (tables, JSON) and to stderr (errors,
  // summaries) keeps its order when both are sent into one pipe or file (2>&1); fully buffered,
  // stdout would come out at exit, after every stderr line.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app;
  std::function<int()> action;
  TopLevel top;
  build_cli(app, action, top);
  set_command_line(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(describe_parse_error(app, e, argc, argv));
  }
  if (top.version) {
    std::fputs(version_text().c_str(), stdout);
    return kExitOk;
  }
  if (top.help && !top.help_topic.empty()) {
    const CLI::App* sub = find_subcommand(app, top.help_topic);
    if (!sub) return usage_error("help: no command '" + top.help_topic + "'" + suggestion(app, top.help_topic));
    std::fputs(sub->help().c_str(), stdout);
    return kExitOk;
  }
  if (!action) {  // `ckpt` alone, `ckpt help`
    std::fputs(overview(app).c_str(), stdout);
    return kExitOk;
  }
  install_interrupt_handlers();
  try {
    return action();
  } catch (const UsageError& e) {
    return usage_error(e.what());
  } catch (const ckpt::Error& e) {
    std::fprintf(stderr, "ckpt: error: %s\n", e.what());
    if (e.code() == ckpt::Errc::kInterrupted) return interrupted_exit_code();
    return e.code() == ckpt::Errc::kInvalidArgument ? kExitUsage : kExitFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt: error: %s [internal]\n", e.what());
    return kExitFailed;
  }
}
