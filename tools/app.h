// The whole command-line interface as one CLI11 definition: main.cpp parses with it, and
// tools/gendoc/gendoc.cpp turns the same definition into the man page and the bash and zsh
// completions at build time, so help, man page and completion never drift apart.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace ckpt::cli {

inline constexpr const char* kProgramDescription =
    "offline LLM checkpoint conversion, quantization, sharding and validation";

struct TopLevel {
  bool version = false;
  std::string help_topic;  // `ckpt help [COMMAND]`
  bool help = false;
};

// Adds every subcommand, -V/--version and `help` to `app`.
void build_cli(CLI::App& app, std::function<int()>& action, TopLevel& top);

// `ckpt`, `ckpt help`: the subcommands with their one-line descriptions, the options every
// writing command shares and the exit codes.
std::string overview(const CLI::App& app);
// -V/--version: version, and what this build and this CPU can run (CUDA, SIMD paths).
std::string version_text();

// The subcommands added by build_cli, in order (not `help`).
std::vector<const CLI::App*> subcommands_of(const CLI::App& app);

}  // namespace ckpt::cli

namespace ckpt::cli {

// The subcommand called `name`, or null.
const CLI::App* find_subcommand(const CLI::App& app, const std::string& name);
// " (did you mean convert?)" when a subcommand name is close to `word`, else "".
std::string suggestion(const CLI::App& app, const std::string& word);
// One line for a CLI11 parse error, naming the subcommand, with the nearest option or subcommand
// for a misspelt one.
std::string describe_parse_error(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv);

}  // namespace ckpt::cli
