#include "app.h"

#include <algorithm>
#include <sstream>

#include "common.h"
#include "formats/crc32.h"
#include "ops/cast.h"
#include "plan/manifest.h"
#include "subcommands.h"
#if defined(CKPT_HAVE_CUDA)
#include "gpu_info.h"
#endif

namespace ckpt::cli {

void build_cli(CLI::App& app, std::function<int()>& action, TopLevel& top) {
  app.name("ckpt");
  app.description(std::string("ckpt: ") + kProgramDescription);
  app.require_subcommand(0, 1);
  app.add_flag("-V,--version", top.version, "Print the version and what this build can run (CUDA, SIMD), then exit");
#define CKPT_ADD_SUBCOMMAND(name) add_##name(app, action);
  CKPT_SUBCOMMANDS(CKPT_ADD_SUBCOMMAND)
#undef CKPT_ADD_SUBCOMMAND
  auto* help = app.add_subcommand("help", "Print this overview, or the options of COMMAND");
  help->add_option("COMMAND", top.help_topic, "A subcommand");
  help->callback([&top] { top.help = true; });
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
  std::vector<const CLI::App*> out;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; }))
    if (s->get_name() != "help") out.push_back(s);
  return out;
}

std::string overview(const CLI::App& app) {
  std::ostringstream o;
  o << "ckpt " << kToolVersion << ": " << kProgramDescription << "\n\n"
    << "Usage: ckpt COMMAND [OPTIONS] ARGS...     ckpt help COMMAND, ckpt COMMAND --help: its options\n\n"
    << "Commands:\n";
  for (const CLI::App* s : subcommands_of(app)) {
    std::string name = s->get_name();
    o << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << s->get_description() << "\n";
  }
  o << "\nEvery command that writes takes -f/--force, -T/--threads N, --dry-run, -q/--quiet, -v/--verbose\n"
       "and --json (the summary as JSON on stdout; human text goes to stderr).\n"
       "Sizes: 5GB = 5*10^9 bytes, 5GiB = 5*2^30, 5G = 5GB (as llama.cpp's --split-max-size).\n"
       "Exit codes: 0 success, 1 bad input or failed check, 2 usage error, 3 validate without a GPU,\n"
       "130 interrupted. Error lines read \"ckpt: error: ... [code]\".\n"
       "-V/--version prints the version and the build (CUDA, SIMD paths).\n";
  return o.str();
}

std::string version_text() {
  std::ostringstream o;
  o << "ckpt " << kToolVersion << "\n";
#if defined(CKPT_HAVE_CUDA)
  const int gpus = cuda::device_count();
  o << "CUDA: yes (kernels for " << CKPT_CUDA_ARCHITECTURES << "); GPUs visible: " << gpus;
  for (int g = 0; g < gpus; ++g) o << (g ? ", " : " (") << cuda::device_description(g) << (g + 1 == gpus ? ")" : "");
  o << "\n";
#else
  o << "CUDA: no (built without nvcc: --device cuda and the GPU phases of validate are unavailable)\n";
#endif
  o << "SIMD on this CPU: cast";
  for (ops::CastPath p : ops::cast_paths_on_this_cpu()) o << " " << ops::cast_path_name(p);
  o << "; crc32 " << (detail::cpu_has_vpclmul() ? "vpclmulqdq" : detail::cpu_has_pclmul() ? "pclmulqdq" : "table") << "\n";
  return o.str();
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The candidate closest to `word`: a prefix of one, or within a third of its length in edits.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    if (word.size() >= 3 && c.compare(0, word.size(), word) == 0) return c;
    const size_t d = edit_distance(word, c);
    if (d < best_d && d <= std::max<size_t>(1, c.size() / 3)) best_d = d, best = c;
  }
  return best;
}

std::vector<std::string> option_names(const CLI::App& sub) {
  std::vector<std::string> out;
  for (const CLI::Option* o : sub.get_options()) {
    for (const auto& l : o->get_lnames()) out.push_back("--" + l);
    for (const auto& s : o->get_snames()) out.push_back("-" + s);
  }
  return out;
}

// The first argument naming a subcommand, or null.
const CLI::App* chosen_subcommand(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (const CLI::App* s = find_subcommand(app, argv[i])) return s;
  return nullptr;
}

}  // namespace

const CLI::App* find_subcommand(const CLI::App& app, const std::string& name) {
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; }))
    if (s->get_name() == name) return s;
  return nullptr;
}

std::string suggestion(const CLI::App& app, const std::string& word) {
  std::vector<std::string> names;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(s->get_name());
  std::string n = nearest(word, names);
  return n.empty() ? "" : " (did you mean " + n + "?)";
}

std::string describe_parse_error(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  const CLI::App* sub = chosen_subcommand(app, argc, argv);
  const std::string where = sub ? sub->get_name() + ": " : "";
  const std::string help = sub ? "; see ckpt " + sub->get_name() + " --help" : "; see ckpt help";
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    // Name the first argument nobody took, with the nearest option or subcommand.
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (!sub && !arg.empty() && arg[0] != '-') return "no command '" + arg + "'" + suggestion(app, arg) + help;
      if (arg.size() < 2 || arg[0] != '-' || (arg[1] >= '0' && arg[1] <= '9')) continue;
      const std::string flag = arg.substr(0, arg.find('='));
      auto names = option_names(sub ? *sub : app);
      if (std::find(names.begin(), names.end(), flag) != names.end()) continue;
      const std::string n = nearest(flag, names);
      return where + "unknown option " + flag + (n.empty() ? "" : " (did you mean " + n + "?)") + help;
    }
    return where + "too many arguments: " + std::string(e.what()).substr(std::string(e.what()).find(':') + 2) + help;
  }
  std::string msg = e.what();
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return where + msg + help;
}

}  // namespace ckpt::cli
