#include "checkpoint/dir_files.h"

#include <algorithm>
#include <filesystem>

#include "formats/packed_source.h"

namespace fs = std::filesystem;

namespace ckpt {

std::optional<std::string> packed_container_of(const std::string& dir) {
  std::error_code ec;
  const fs::path c = fs::path(dir) / kPackFileName;
  if (fs::is_directory(dir, ec) && fs::is_regular_file(c, ec)) return c.string();
  return std::nullopt;
}

std::optional<std::string> locate_checkpoint_file(const std::string& dir, const std::string& rel) {
  const fs::path p = fs::path(dir) / rel;
  const std::string parent = p.parent_path().string(), name = p.filename().string();
  if (auto c = packed_container_of(parent.empty() ? "." : parent)) {
    if (!PackedContainer::open(*c)->index().find(name)) return std::nullopt;
    return *c + "/" + name;
  }
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p.string();
  return std::nullopt;
}

std::vector<std::string> checkpoint_file_names(const std::string& dir) {
  std::vector<std::string> names;
  if (auto c = packed_container_of(dir)) {
    const auto container = PackedContainer::open(*c);  // alive while its members are read
    for (const auto& m : container->index().members) names.push_back(m.name);
  } else {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace ckpt
