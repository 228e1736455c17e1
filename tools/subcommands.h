// One function per subcommand; each lives in its own file and only parses options and calls lib/.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace ckpt::cli {

// Each adds its subcommand to `app`; when the subcommand is chosen its callback stores the work
// to run in `action` (so errors are reported by main, in one place).
void add_inspect(CLI::App& app, std::function<int()>& action);
void add_rechunk(CLI::App& app, std::function<int()>& action);
void add_shard(CLI::App& app, std::function<int()>& action);
void add_merge(CLI::App& app, std::function<int()>& action);
void add_validate(CLI::App& app, std::function<int()>& action);
void add_convert(CLI::App& app, std::function<int()>& action);
void add_quantize(CLI::App& app, std::function<int()>& action);
void add_cast(CLI::App& app, std::function<int()>& action);
void add_forward(CLI::App& app, std::function<int()>& action);
void add_perplexity(CLI::App& app, std::function<int()>& action);
void add_finalize(CLI::App& app, std::function<int()>& action);  // tools/parts.cpp

}  // namespace ckpt::cli
