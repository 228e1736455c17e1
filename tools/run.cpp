// ckpt run PIPELINE SRC DST [write options]: the steps of a pipeline file (or of a named pipeline,
// recipes/pipelines/NAME.json) in one pass over SRC (lib/plan/pipeline.h). A pipeline file:
//   {"description": "...", "steps": [{"cast": {"dtype": "bf16"}}, {"quantize": {"fp8": true}},
//                                     {"shard": {"tp": 8}}]}
// Each step is {COMMAND: {OPTION: VALUE, ...}}: the options of `ckpt COMMAND` without their
// leading dashes; true gives a flag, a list repeats the option. A pipeline ending in gguf writes
// one file: DST names it, as for `ckpt gguf`.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "plan/pipeline.h"
#include "recipes/recipe.h"
#include "steps.h"
#include "subcommands.h"

namespace ckpt::cli {

namespace {

namespace fs = std::filesystem;

// A path to a pipeline file as given, else the named pipeline in the recipes directory.
std::string pipeline_path(const std::string& given) {
  std::error_code ec;
  if (fs::exists(given, ec)) return given;
  const bool name = given.find('/') == std::string::npos && given.find('.') == std::string::npos;
  const std::string named = (fs::path(Recipe::default_recipes_dir()) / "pipelines" / (given + ".json")).string();
  if (name && fs::is_regular_file(named, ec)) return named;
  fail(Errc::kInvalidArgument, given, "",
       name ? "no such pipeline file, and no named pipeline " + named : "no such pipeline file");
}

[[noreturn]] void bad_option(const std::string& path, const std::string& label, const std::string& key, const std::string& why) {
  fail(Errc::kInvalidArgument, path, "", label + ": option '" + printable(key, 80) + "' " + why);
}

// The command-line arguments a step's options stand for.
std::vector<std::string> step_arguments(const ojson& options, const std::string& path, const std::string& label) {
  auto bad = [&](const std::string& key, const std::string& why) { bad_option(path, label, key, why); };
  auto scalar = [&](const std::string& key, const ojson& v) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
    bad_option(path, label, key, "must be a string, an integer, true, or a list of strings and integers");
  };
  std::vector<std::string> args;
  for (const auto& [key, v] : options.items()) {
    const bool word = !key.empty() && key[0] != '-' && std::all_of(key.begin(), key.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (!word) bad(key, "is not an option name (lower-case letters, digits and '-', without the leading '--')");
    if (v.is_boolean()) {
      if (v.get<bool>()) args.push_back("--" + key);
    } else if (v.is_array()) {
      for (const auto& item : v) {
        args.push_back("--" + key);
        args.push_back(scalar(key, item));
      }
    } else {
      args.push_back("--" + key);
      args.push_back(scalar(key, v));
    }
  }
  return args;
}

struct LoadedStep {
  PipelineStep step;
  Step made;
  std::string label;
};

// Reads the pipeline file and parses every step's options with its subcommand's own definition;
// `dst` is the run's destination (the file a last step writing one names).
std::vector<LoadedStep> load_pipeline(const std::string& path, const std::string& dst) {
  StrictJsonResult r = parse_strict_json(read_text_file(path));
  if (!r.ok) fail(Errc::kInvalidArgument, path, "", "the pipeline is not valid JSON: " + r.error);
  const ojson& root = r.value;
  if (!root.is_object() || !root.contains("steps") || !root["steps"].is_array() || root["steps"].empty())
    fail(Errc::kInvalidArgument, path, "", "a pipeline is an object with a non-empty \"steps\" list");
  for (const auto& [key, v] : root.items())
    if (key != "steps" && !(key == "description" && v.is_string()))
      fail(Errc::kInvalidArgument, path, "", "unknown key '" + printable(key, 80) + "' (a pipeline has \"description\" and \"steps\")");
  std::vector<LoadedStep> steps;
  const auto& known = step_commands();
  for (const auto& s : root["steps"]) {
    const std::string where = "step " + std::to_string(steps.size() + 1);
    if (!s.is_object() || s.size() != 1 || !s.begin().value().is_object())
      fail(Errc::kInvalidArgument, path, "", where + ": a step is {\"COMMAND\": {OPTIONS}}");
    const std::string command = s.begin().key();
    auto it = known.find(command);
    if (it == known.end()) {
      std::string names;
      for (const auto& [n, _] : known) names += (names.empty() ? "" : ", ") + n;
      fail(Errc::kInvalidArgument, path, "", where + ": '" + printable(command, 80) + "' is not a step (steps: " + names + ")");
    }
    LoadedStep ls;
    ls.label = where + " (" + command + ")";
    CLI::App app{"ckpt " + command, "ckpt run"};
    const MakeStep make = it->second(&app);
    std::vector<std::string> args = step_arguments(s.begin().value(), path, ls.label);
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      usage(path + ": " + ls.label + ": " + e.what());
    }
    try {
      ls.made = make();
    } catch (const UsageError& e) {
      usage(path + ": " + ls.label + ": " + e.what());
    }
    if (ls.made.run_alone)
      usage(path + ": " + ls.label + ": calibrated quantization runs the model layer by layer and cannot join a one-pass "
            "pipeline; run `ckpt quantize` with these options, then a pipeline of the remaining steps on its output");
    ls.step.command = command;
    ls.step.options = s.begin().value();
    ls.step.writes_file = static_cast<bool>(ls.made.plan_file);
    ls.step.plan = [plan = ls.made.plan, plan_file = ls.made.plan_file, dst, path, label = ls.label](const Checkpoint& ck) {
      // A step that writes a file is the last (compose_pipeline refuses any after it before
      // planning), so DST names its file.
      const std::string file_name = plan_file ? output_file_name(dst) : "";
      try {
        return plan_file ? plan_file(ck, file_name) : plan(ck);
      } catch (const UsageError& e) {
        usage(path + ": " + label + ": " + e.what());
      }
    };
    steps.push_back(std::move(ls));
  }
  return steps;
}

}  // namespace

void add_run(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "run", "Run a pipeline of steps (convert, cast, quantize, shard, rechunk, gguf) in one pass, with no intermediate files");
  struct Args {
    std::string pipeline, src, dst;
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("PIPELINE", a->pipeline,
                  "Pipeline JSON file, or the name of one in recipes/pipelines/ (e.g. vllm-fp8-tp8)")
      ->required();
  cmd->add_option("SRC", a->src, "Source checkpoint (file or directory)")->required();
  cmd->add_option("DST", a->dst, "Output directory (the output file for a pipeline ending in gguf)")->required();
  add_write_options(cmd, a->w);
  cmd->callback([&action, a] {
    action = [a] {
      const std::string path = pipeline_path(a->pipeline);
      const std::vector<LoadedStep> loaded = load_pipeline(path, a->dst);
      std::vector<PipelineStep> steps;
      for (const auto& l : loaded) steps.push_back(l.step);
      WriteOptions w = a->w;
      w.file_destination = steps.back().writes_file;
      const Checkpoint ck = open_checkpoint(a->src, loaded[0].made.open);
      const Plan plan = compose_pipeline(ck, steps);
      const int rc = run_plan(plan, a->dst, {a->src}, w, [&loaded] {
        ojson reports = ojson::object();
        for (const auto& l : loaded)
          if (l.made.report) reports[l.label] = l.made.report();
        return reports;
      });
      if (rc == kExitOk && !w.dry_run && !w.quiet)
        for (const auto& l : loaded)
          if (l.made.summary) l.made.summary(w);
      return rc;
    };
  });
}

}  // namespace ckpt::cli
