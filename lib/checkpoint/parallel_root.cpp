#include "checkpoint/parallel_root.h"

#include <filesystem>
#include <map>
#include <regex>

#include "checkpoint/checkpoint.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

// Numbered subdirectories "<prefix><n>" of dir, by number.
std::map<int, std::string> numbered_dirs(const std::string& dir, const std::string& prefix) {
  std::map<int, std::string> out;
  std::regex re(prefix + "([0-9]+)");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    std::string name = e.path().filename().string();
    if (e.is_directory() && std::regex_match(name, m, re) && m[1].length() < 6)
      out[std::stoi(m[1].str())] = e.path().string();
  }
  return out;
}

bool has_weight_files(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && is_weight_file_name(e.path().filename().string()) &&
        e.path().filename() != "ckpt-manifest.json")
      return true;
  return false;
}

}  // namespace

std::vector<RankDir> parallel_rank_dirs(const std::string& root) {
  std::vector<RankDir> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec) || has_weight_files(root)) return out;
  const auto stages = numbered_dirs(root, "stage-");
  if (!stages.empty()) {
    for (const auto& [s, sdir] : stages)
      for (const auto& [r, rdir] : numbered_dirs(sdir, "rank-"))
        out.push_back({"stage-" + std::to_string(s) + "/rank-" + std::to_string(r), rdir, s, r});
    return out;
  }
  for (const auto& [r, rdir] : numbered_dirs(root, "rank-")) out.push_back({"rank-" + std::to_string(r), rdir, 0, r});
  return out;
}

}  // namespace ckpt
