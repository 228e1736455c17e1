#include "recipes/recipe.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/sizes.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

struct RoleName {
  TensorRole role;
  const char* name;
};
constexpr RoleName kRoleNames[] = {
    {TensorRole::kReplicated, "replicated"}, {TensorRole::kColumn, "column"},
    {TensorRole::kRow, "row"},               {TensorRole::kVocab, "vocab"},
    {TensorRole::kQHeads, "q_heads"},        {TensorRole::kKvHeads, "kv_heads"},
    {TensorRole::kFusedQkv, "fused_qkv"},    {TensorRole::kFusedGateUp, "fused_gate_up"},
};

std::string role_list() {
  std::string s;
  for (const auto& r : kRoleNames) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

bool optional_bool(const ojson& rule, const char* key, bool fallback, const std::string& label, size_t index) {
  auto it = rule.find(key);
  if (it == rule.end()) return fallback;
  if (!it->is_boolean())
    fail(Errc::kInvalidArgument, label, "", "rules[" + std::to_string(index) + "]." + key + " must be true or false");
  return it->get<bool>();
}

std::string required_string(const ojson& obj, const char* key, const std::string& label, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string() || it->get<std::string>().empty())
    fail(Errc::kInvalidArgument, label, "", where + key + " must be a non-empty string");
  return it->get<std::string>();
}

}  // namespace

const char* tensor_role_name(TensorRole r) {
  for (const auto& x : kRoleNames)
    if (x.role == r) return x.name;
  return "?";
}

std::optional<TensorRole> tensor_role_from_name(const std::string& name) {
  for (const auto& x : kRoleNames)
    if (name == x.name) return x.role;
  return std::nullopt;
}

Recipe Recipe::parse(const ojson& doc, const std::string& label) {
  if (!doc.is_object()) fail(Errc::kInvalidArgument, label, "", "a recipe must be a JSON object");
  for (const auto& [key, value] : doc.items())
    if (key != "name" && key != "architectures" && key != "rules" && key != "description")
      fail(Errc::kInvalidArgument, label, "", "unknown recipe key '" + key + "' (known: name, architectures, rules, description)");
  Recipe r;
  r.path_ = label;
  r.name_ = required_string(doc, "name", label, "");
  auto archs = doc.find("architectures");
  if (archs == doc.end() || !archs->is_array() || archs->empty())
    fail(Errc::kInvalidArgument, label, "", "architectures must be a non-empty array of strings");
  for (const auto& a : *archs) {
    if (!a.is_string()) fail(Errc::kInvalidArgument, label, "", "architectures must be a non-empty array of strings");
    r.architectures_.push_back(a.get<std::string>());
  }
  auto rules = doc.find("rules");
  if (rules == doc.end() || !rules->is_array() || rules->empty())
    fail(Errc::kInvalidArgument, label, "", "rules must be a non-empty array");
  for (size_t i = 0; i < rules->size(); ++i) {
    const ojson& j = (*rules)[i];
    const std::string where = "rules[" + std::to_string(i) + "].";
    if (!j.is_object()) fail(Errc::kInvalidArgument, label, "", where + " must be an object");
    for (const auto& [key, value] : j.items())
      if (key != "match" && key != "module" && key != "role" && key != "linear" && key != "quantize" &&
          key != "expert" && key != "group")
        fail(Errc::kInvalidArgument, label, "", where + key + " is not a rule key (match, module, role, linear, quantize, expert, group)");
    const bool has_match = j.contains("match"), has_module = j.contains("module");
    if (has_match == has_module)
      fail(Errc::kInvalidArgument, label, "", where + " needs exactly one of match or module");
    RecipeRule rule;
    std::string role = required_string(j, "role", label, where);
    auto parsed = tensor_role_from_name(role);
    if (!parsed) fail(Errc::kInvalidArgument, label, "", where + "role '" + role + "' is not one of: " + role_list());
    rule.role = *parsed;
    rule.linear = optional_bool(j, "linear", false, label, i);
    rule.quantize = optional_bool(j, "quantize", rule.linear, label, i);
    rule.expert = optional_bool(j, "expert", false, label, i);
    if (j.contains("group")) rule.group = required_string(j, "group", label, where);
    if (rule.quantize && !rule.linear)
      fail(Errc::kInvalidArgument, label, "", where + " quantize is only meaningful for a linear weight");
    if (has_match) {
      rule.match = required_string(j, "match", label, where);
      r.rules_.push_back(rule);
    } else {
      // A module rule stands for the module's weight (the Linear weight quantization may
      // replace) and every other tensor of the module (bias, scales, packed GPTQ parts), which
      // split the same way but are never themselves quantized.
      const std::string module = required_string(j, "module", label, where);
      RecipeRule weight = rule;
      weight.match = module + ".weight";
      r.rules_.push_back(weight);
      RecipeRule companion = rule;
      companion.match = module + ".*";
      companion.linear = false;
      companion.quantize = false;
      r.rules_.push_back(companion);
    }
  }
  return r;
}

Recipe Recipe::load_file(const std::string& path) {
  auto parsed = parse_strict_json(read_text_file(path));
  if (!parsed.ok) fail(Errc::kInvalidArgument, path, "", "recipe is not valid JSON: " + parsed.error);
  return parse(parsed.value, path);
}

const RecipeRule* Recipe::match(const std::string& tensor_name) const {
  for (const auto& r : rules_)
    if (glob_match(r.match, tensor_name)) return &r;
  return nullptr;
}

std::vector<std::string> Recipe::unmatched(const Checkpoint& ck) const {
  std::vector<std::string> out;
  for (const auto& t : ck.tensors)
    if (!match(t.name)) out.push_back(t.name);
  return out;
}

void Recipe::check_covers(const Checkpoint& ck) const {
  auto missing = unmatched(ck);
  if (missing.empty()) return;
  std::string list;
  for (size_t i = 0; i < missing.size() && i < 20; ++i) list += (i ? ", " : "") + missing[i];
  if (missing.size() > 20) list += ", ... (" + std::to_string(missing.size()) + " in all)";
  fail(Errc::kUnsupported, path_, "", "recipe '" + name_ + "' has no rule for " +
                                          count_of(missing.size(), "tensor") + ": " + list + " (add rules, or pass --recipe FILE)");
}

std::string Recipe::default_recipes_dir() {
  if (const char* env = std::getenv("CKPT_RECIPES_DIR"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path beside = exe.parent_path().parent_path() / "recipes";
    if (fs::is_directory(beside / ".", ec)) return beside.string();
  }
  // The source tree's recipes/, as CMake names it (not __FILE__: a compiler cache may rewrite
  // source paths to relative ones).
  return CKPT_SOURCE_RECIPES_DIR;
}

std::vector<Recipe> Recipe::load_dir(const std::string& recipes_dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(recipes_dir, ec))
    if (e.path().extension() == ".json") files.push_back(e.path());
  if (ec) fail(Errc::kNoCheckpoint, recipes_dir, "", "cannot list the recipes directory: " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<Recipe> out;
  for (const auto& f : files) out.push_back(load_file(f.string()));
  return out;
}

namespace {

std::string describe_available(const std::vector<Recipe>& all) {
  std::string available;
  for (const auto& r : all) {
    available += (available.empty() ? "" : "; ") + r.name() + " (";
    for (size_t i = 0; i < r.architectures().size(); ++i) available += (i ? ", " : "") + r.architectures()[i];
    available += ")";
  }
  return available;
}

}  // namespace

Recipe Recipe::for_checkpoint(const Checkpoint& ck, const std::string& recipes_dir) {
  const std::string arch = ck.architecture();
  const std::vector<Recipe> all = load_dir(recipes_dir);
  const Recipe* found = nullptr;
  for (const auto& r : all) {
    if (std::find(r.architectures().begin(), r.architectures().end(), arch) == r.architectures().end()) continue;
    if (found) fail(Errc::kInvalidArgument, r.path(), "", "architecture " + arch + " is also claimed by " + found->path());
    found = &r;
  }
  if (arch.empty())
    fail(Errc::kUnsupported, ck.path, "", "config.json names no architectures[0]; pass --recipe FILE (available: " +
                                              describe_available(all) + ")");
  if (!found)
    fail(Errc::kUnsupported, ck.path, "", "no recipe for architecture " + arch + " in " + recipes_dir +
                                              "; pass --recipe FILE (available: " + describe_available(all) + ")");
  return *found;
}

Recipe Recipe::named(const std::string& name, const std::string& recipes_dir) {
  const std::vector<Recipe> all = load_dir(recipes_dir);
  for (const auto& r : all)
    if (r.name() == name) return r;
  fail(Errc::kUnsupported, recipes_dir, "", "no recipe named '" + name + "' (available: " + describe_available(all) +
                                                "); pass --recipe FILE");
}

}  // namespace ckpt
