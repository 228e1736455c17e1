#include "checkpoint/hf_cache.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/file_io.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

std::string env_or(const EnvLookup& env, const char* name, const std::string& fallback) {
  const char* v = env(name);
  return v && *v ? std::string(v) : fallback;
}

// "~" and "~/..." as os.path.expanduser reads them (from $HOME).
std::string expand_user(const std::string& p, const EnvLookup& env) {
  if (p.empty() || p[0] != '~' || (p.size() > 1 && p[1] != '/')) return p;
  return env_or(env, "HOME", "") + p.substr(1);
}

// A repository id as the Hub allows them: "org/name" of letters, digits, '-', '_' and '.'
// (huggingface_hub utils/_validators.py REPO_ID_REGEX, with the owner required here).
bool is_repo_id(const std::string& s) {
  static const std::regex re(R"([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)");
  return std::regex_match(s, re) && s.find("--") == std::string::npos && s.find("..") == std::string::npos;
}

bool is_repo_folder(const fs::path& p) {
  std::error_code ec;
  return p.filename().string().rfind("models--", 0) == 0 && fs::is_directory(p / "snapshots", ec);
}

// The snapshot of refs/main, else the only snapshot; fails naming what is there otherwise.
std::string snapshot_of(const fs::path& repo, const std::string& as_given) {
  std::error_code ec;
  const fs::path ref = repo / "refs" / "main";
  if (fs::is_regular_file(ref, ec)) {
    std::string commit = read_text_file(ref.string());
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == '\r' || commit.back() == ' ')) commit.pop_back();
    const fs::path snap = repo / "snapshots" / commit;
    if (commit.empty() || commit.find('/') != std::string::npos || !fs::is_directory(snap, ec))
      fail(Errc::kNoCheckpoint, as_given, "",
           "refs/main of the Hugging Face cache entry " + repo.string() + " names no snapshot in snapshots/");
    return snap.string();
  }
  std::vector<std::string> snaps;
  for (const auto& e : fs::directory_iterator(repo / "snapshots", ec))
    if (e.is_directory()) snaps.push_back(e.path().filename().string());
  if (snaps.size() == 1) return (repo / "snapshots" / snaps[0]).string();
  std::sort(snaps.begin(), snaps.end());
  std::string list;
  for (const auto& s : snaps) list += (list.empty() ? "" : ", ") + s;
  fail(Errc::kNoCheckpoint, as_given, "",
       "the Hugging Face cache entry " + repo.string() + " has no refs/main and " +
           (snaps.empty() ? std::string("no snapshot") : std::to_string(snaps.size()) + " snapshots (" + list + ")") +
           ": name the snapshot directory");
}

}  // namespace

std::string hf_hub_cache_dir(const EnvLookup& env) {
  const std::string home =
      expand_user(env_or(env, "HF_HOME", env_or(env, "XDG_CACHE_HOME", expand_user("~/.cache", env)) + "/huggingface"), env);
  return expand_user(env_or(env, "HF_HUB_CACHE", env_or(env, "HUGGINGFACE_HUB_CACHE", home + "/hub")), env);
}

std::string resolve_model_path(const std::string& path, const EnvLookup& env) {
  std::error_code ec;
  const fs::path given = fs::path(path).lexically_normal();
  if (fs::exists(fs::symlink_status(path, ec))) {
    const fs::path p = given.filename().empty() ? given.parent_path() : given;
    return is_repo_folder(p) ? snapshot_of(p, path) : path;
  }
  if (!is_repo_id(path)) return path;
  const std::string hub = hf_hub_cache_dir(env);
  const size_t slash = path.find('/');
  const fs::path repo = fs::path(hub) / ("models--" + path.substr(0, slash) + "--" + path.substr(slash + 1));
  if (!is_repo_folder(repo))
    fail(Errc::kNoCheckpoint, path, "",
         "no such file or directory, and not in the Hugging Face cache (no " + repo.string() +
             "/snapshots; ckpt never downloads: `huggingface-cli download " + path + "` fetches it)");
  return snapshot_of(repo, path);
}

}  // namespace ckpt
