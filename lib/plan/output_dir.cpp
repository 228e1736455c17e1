#include "plan/output_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

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

// An open descriptor of directory `path` with an exclusive, non-blocking flock on it; -1 when
// the lock is held elsewhere (or the directory cannot be opened).
int lock_directory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool process_exists(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) fail_errno(path, "cannot open to sync");
  const bool ok = ::fsync(fd) == 0;
  const int e = errno;
  ::close(fd);
  errno = e;
  if (!ok) fail_errno(path, "fsync failed");
}

// The temporaries earlier runs left for destination `name` in `parent`: removed when their
// owner is provably gone (pid not running, lock free), else left; one note each.
void remove_stale_temporaries(const fs::path& parent, const std::string& name, std::vector<std::string>& notes) {
  const std::string prefix = "." + name + ".ckpt-tmp-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string entry = e.path().filename().string();
    if (entry.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(entry.c_str() + prefix.size(), &end, 10);
    const std::string path = e.path().string();
    if (process_exists(pid)) {
      notes.push_back("left " + path + ": its owner, pid " + std::to_string(pid) + ", is still running");
      continue;
    }
    const int fd = lock_directory(path);
    if (fd < 0 && fs::is_directory(fs::symlink_status(path, ec))) {
      notes.push_back("left " + path + ": another process holds its lock");
      continue;
    }
    fs::remove_all(path, ec);
    if (fd >= 0) ::close(fd);
    notes.push_back(ec ? "could not remove the stale temporary " + path + ": " + ec.message()
                       : "removed the stale temporary " + path + " (left by pid " + std::to_string(pid) +
                             ", which is gone)");
  }
}

}  // namespace

std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

unsigned current_umask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.compare(0, 6, "Umask:") == 0) return static_cast<unsigned>(std::strtoul(line.c_str() + 6, nullptr, 8));
  const mode_t m = ::umask(022);
  ::umask(m);
  return m;
}

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

// Where DST's temporary goes: beside the name as given (not where a symlink of that name points),
// so that the final rename stays inside one directory.
struct Placement {
  fs::path parent;
  std::string name;
};

Placement placement_of(const std::string& dest, const std::string& as_given) {
  const fs::path d(dest);
  Placement p{d.parent_path(), d.filename().string()};
  if (p.parent.empty()) p.parent = ".";
  if (p.name.empty() || p.name == "." || p.name == "..")
    fail(Errc::kInvalidArgument, as_given, "", "the destination must name a new directory");
  return p;
}

// Where Kind::kFile puts the plan's file `name`: beside the destination.
fs::path sibling_path(const std::string& destination, const std::string& name) {
  return fs::path(destination).parent_path() / name;
}

}  // namespace

void check_output(const std::string& destination, bool force, const std::vector<std::string>& sources,
                  OutputDir::Kind kind, const std::vector<std::string>& files) {
  const std::string dest = without_trailing_slashes(destination);
  for (const auto& s : sources) check_destination(dest, s, force);
  std::error_code ec;
  if (kind == OutputDir::Kind::kFile && fs::is_directory(fs::symlink_status(dest, ec)))
    fail(Errc::kDestinationExists, dest, "", "the destination is a directory; this command writes a file");
  std::vector<std::string> outputs = {dest};
  if (kind == OutputDir::Kind::kFile) {
    outputs.clear();
    for (const auto& f : files) outputs.push_back(sibling_path(dest, f).string());
  }
  for (const auto& o : outputs) {
    if (fs::exists(fs::symlink_status(o, ec)) && !force)
      fail(Errc::kDestinationExists, o, "", "the destination exists (use --force to replace it)");
    if (o != dest)
      for (const auto& s : sources) check_destination(o, s, force);
  }
  const Placement p = placement_of(dest, destination);
  if (!fs::is_directory(p.parent)) fail(Errc::kIo, dest, "", "the parent directory " + p.parent.string() + " does not exist");
}

OutputDir::OutputDir(const std::string& destination, bool force, const std::vector<std::string>& sources, Kind kind,
                     const std::vector<std::string>& files)
    : dest_(without_trailing_slashes(destination)), files_(files), kind_(kind), force_(force) {
  check_output(destination, force, sources, kind, files);
  const Placement p = placement_of(dest_, destination);
  remove_stale_temporaries(p.parent, p.name, notes_);
  std::string tmpl = (p.parent / ("." + p.name + ".ckpt-tmp-" + std::to_string(::getpid()) + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) fail_errno(tmpl, "cannot create the temporary output directory");
  temp_ = tmpl;
  // mkdtemp makes it 0700; the output is for whoever the umask lets read it (a serving process).
  if (::chmod(temp_.c_str(), 0777 & ~current_umask()) != 0) fail_errno(temp_, "cannot set the permissions");
  lock_fd_ = lock_directory(temp_);
  if (lock_fd_ < 0) fail_errno(temp_, "cannot lock the temporary output directory");
}

OutputDir::~OutputDir() {
  if (!committed_ && !temp_.empty()) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string OutputDir::path_of(const std::string& name) const { return (fs::path(temp_) / name).string(); }

void OutputDir::sync(const CancelToken* cancel) const {
  // Files first, then each directory (its entries), deepest first, the temporary itself last.
  std::vector<std::string> dirs;
  for (const auto& e : fs::recursive_directory_iterator(temp_)) {
    check_cancel(cancel);
    if (e.is_directory()) dirs.push_back(e.path().string());
    else fsync_path(e.path().string(), false);
  }
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) fsync_path(*it, true);
  fsync_path(temp_, true);
}

// Moves `from` to `to`; without `replace`, a `to` that appeared meanwhile is refused, never overwritten.
void OutputDir::move_file(const std::string& from, const std::string& to) const {
  if (force_) {
    if (std::rename(from.c_str(), to.c_str()) != 0) fail_errno(to, "cannot move the output into place");
    return;
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) fail(Errc::kDestinationExists, to, "", "the destination appeared while writing; not replacing it");
    if (errno != EINVAL || std::rename(from.c_str(), to.c_str()) != 0) fail_errno(to, "cannot move the output into place");
  }
}

void OutputDir::commit() {
  std::error_code ec;
  if (kind_ == Kind::kFile) {
    // Each rename is atomic: a file appears whole or not at all; the manifest comes last.
    for (const auto& f : files_) move_file(path_of(f), sibling_path(dest_, f).string());
    move_file(path_of(kManifestName), dest_ + ".ckpt-manifest.json");
    committed_ = true;
    fs::remove_all(temp_, ec);
    fs::path parent = fs::path(dest_).parent_path();
    fsync_path(parent.empty() ? "." : parent.string(), true);
    return;
  }
  const bool exists = fs::exists(fs::symlink_status(dest_, ec));
  if (exists && !force_) fail(Errc::kDestinationExists, dest_, "", "the destination appeared while writing; not replacing it");
  if (!exists) {
    // RENAME_NOREPLACE: a destination created meanwhile is refused, never overwritten.
    if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, dest_.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST) fail(Errc::kDestinationExists, dest_, "", "the destination appeared while writing; not replacing it");
      if (errno != EINVAL || ::rename(temp_.c_str(), dest_.c_str()) != 0) fail_errno(dest_, "cannot move the output into place");
    }
  } else if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, dest_.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL) fail_errno(dest_, "cannot exchange the output with the old destination");
    // No RENAME_EXCHANGE on this file system: the old destination goes aside first.
    const std::string old = temp_ + ".old";
    if (std::rename(dest_.c_str(), old.c_str()) != 0) fail_errno(dest_, "cannot move the old destination aside");
    if (std::rename(temp_.c_str(), dest_.c_str()) != 0) {
      int e = errno;
      std::rename(old.c_str(), dest_.c_str());
      errno = e;
      fail_errno(dest_, "cannot move the output into place");
    }
    committed_ = true;
    fs::remove_all(old, ec);
  }
  committed_ = true;
  // After an exchange the old destination sits at the temporary's name: remove it.
  if (exists) fs::remove_all(temp_, ec);
  fs::path parent = fs::path(dest_).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true);
}

}  // namespace ckpt
