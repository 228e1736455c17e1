#include "plan/output_dir.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "plan/manifest.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

// The absolute, symlink-resolved form of a path that may not exist yet.
fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  fs::path r = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : r;
}

bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

}  // namespace

void check_destination(const std::string& destination, const std::string& source, bool force) {
  fs::path d = resolved(destination), s = resolved(source);
  if (d == s) fail(Errc::kDestinationInSource, destination, "", "the destination is the source");
  if (fs::is_directory(s) && is_within(d, s))
    fail(Errc::kDestinationInSource, destination, "", "the destination lies inside the source " + source);
  if (is_within(s, d) && fs::exists(d))
    fail(Errc::kDestinationInSource, destination, "",
         std::string("the source ") + source + " lies inside the destination" +
             (force ? ", which --force would delete" : ""));
}

namespace {

// Where Kind::kFile puts the plan's file `name`: beside the destination.
fs::path sibling_path(const std::string& destination, const std::string& name) {
  return fs::path(destination).parent_path() / name;
}

}  // namespace

void check_output(const std::string& destination, bool force, const std::vector<std::string>& sources,
                  OutputDir::Kind kind, const std::vector<std::string>& files) {
  for (const auto& s : sources) check_destination(destination, s, force);
  std::error_code ec;
  if (kind == OutputDir::Kind::kFile && fs::is_directory(fs::symlink_status(destination, ec)))
    fail(Errc::kDestinationExists, destination, "", "the destination is a directory; this command writes a file");
  std::vector<std::string> outputs = {destination};
  if (kind == OutputDir::Kind::kFile) {
    outputs.clear();
    for (const auto& f : files) outputs.push_back(sibling_path(destination, f).string());
  }
  for (const auto& o : outputs) {
    if (fs::exists(fs::symlink_status(o, ec)) && !force)
      fail(Errc::kDestinationExists, o, "", "the destination exists (use --force to replace it)");
    if (o != destination)
      for (const auto& s : sources) check_destination(o, s, force);
  }
  fs::path parent = resolved(destination).parent_path();
  if (!fs::is_directory(parent)) fail(Errc::kIo, destination, "", "the parent directory " + parent.string() + " does not exist");
}

OutputDir::OutputDir(const std::string& destination, bool force, const std::vector<std::string>& sources, Kind kind,
                     const std::vector<std::string>& files)
    : dest_(destination), files_(files), kind_(kind), force_(force) {
  check_output(destination, force, sources, kind, files);
  fs::path d = resolved(destination);
  fs::path parent = d.parent_path();
  std::string tmpl = (parent / ("." + d.filename().string() + ".ckpt-tmp-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) fail_errno(tmpl, "cannot create the temporary output directory");
  temp_ = tmpl;
}

OutputDir::~OutputDir() {
  if (!committed_ && !temp_.empty()) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

std::string OutputDir::path_of(const std::string& name) const { return (fs::path(temp_) / name).string(); }

void OutputDir::commit() {
  std::error_code ec;
  if (kind_ == Kind::kFile) {
    // Each rename is atomic: a file appears whole or not at all; the manifest comes last.
    const std::string manifest = dest_ + ".ckpt-manifest.json";
    for (const auto& f : files_) {
      const std::string to = sibling_path(dest_, f).string();
      if (!force_ && fs::exists(fs::symlink_status(to, ec)))
        fail(Errc::kDestinationExists, to, "", "the destination appeared while writing; not replacing it");
      if (std::rename(path_of(f).c_str(), to.c_str()) != 0) fail_errno(to, "cannot move the output into place");
    }
    if (std::rename(path_of(kManifestName).c_str(), manifest.c_str()) != 0)
      fail_errno(manifest, "cannot move the manifest into place");
    committed_ = true;
    fs::remove_all(temp_, ec);
    return;
  }
  std::string old;
  if (fs::exists(fs::symlink_status(dest_, ec))) {
    if (!force_) fail(Errc::kDestinationExists, dest_, "", "the destination appeared while writing; not replacing it");
    old = temp_ + ".old";
    if (std::rename(dest_.c_str(), old.c_str()) != 0) fail_errno(dest_, "cannot move the old destination aside");
  }
  if (std::rename(temp_.c_str(), dest_.c_str()) != 0) {
    int e = errno;
    if (!old.empty()) std::rename(old.c_str(), dest_.c_str());
    errno = e;
    fail_errno(dest_, "cannot move the output into place");
  }
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace ckpt
