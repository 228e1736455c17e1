// Atomic, durable output directories. Everything is written into a temporary sibling of the
// destination and renamed into place only when the whole run succeeded; a failed or interrupted
// run removes the temporary directory, so nothing half-written is ever left under the
// destination's name.
//
// The temporary is named `.NAME.ckpt-tmp-PID-XXXXXX` beside NAME, and its owner holds an
// exclusive flock(2) on it while running. A run killed outright (SIGKILL, power loss) cannot
// remove its temporary; the next run writing to the same NAME finds it, and removes it when it is
// provably dead (its pid is gone and its lock is free), or leaves it alone and says so.
//
// Durability: before the rename every file and directory of the output is fsync'ed (unless
// asked not to), and after it the parent directory, so a successful exit means the output is on
// disk. close(2) results are checked. With `force`, an existing destination is swapped with the
// new one in one step (renameat2 RENAME_EXCHANGE, Linux 3.15+) so that the destination never
// disappears; on a file system without it (EINVAL), the old destination is renamed aside first,
// leaving a moment in which the name does not exist.
//
// Permissions follow the umask, as cp and zstd do: directories 0777 & ~umask, files 0666 & ~umask.
#pragma once

#include <string>
#include <vector>

#include "core/cancel.h"

namespace ckpt {

class OutputDir {
 public:
  // What the destination names: a directory that receives every output file (the default), or
  // the output's file itself (`ckpt gguf SRC OUT.gguf`): the plan's files are then written as
  // siblings in the destination's directory under their own names (one file: the destination's
  // own name; llama.cpp's splits: OUT-00001-of-00003.gguf ...), and the manifest as
  // "<destination>.ckpt-manifest.json". `files` names them (Kind::kFile only).
  enum class Kind { kDirectory, kFile };
  // Refuses an existing destination (for kFile: any of `files`) unless `force`, a destination that
  // is a source or lies inside one, and (with `force`) a destination that contains a source, which
  // replacing it would delete. Removes stale temporaries of earlier runs for this destination
  // (notes() says which), then creates and locks the temporary sibling. A trailing '/' on
  // `destination` is ignored. A symlink named as the destination is itself replaced (with
  // `force`), never the directory it points to: the temporary lives beside the name, so the final
  // rename never crosses file systems.
  OutputDir(const std::string& destination, bool force, const std::vector<std::string>& sources,
            Kind kind = Kind::kDirectory, const std::vector<std::string>& files = {});
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& destination() const { return dest_; }
  const std::string& temp_path() const { return temp_; }
  std::string path_of(const std::string& name) const;  // a file inside the temporary directory
  // One line per stale temporary found: removed, or left because its owner may still run.
  const std::vector<std::string>& notes() const { return notes_; }
  // fsyncs every file and directory under the temporary directory (checking `cancel` between).
  void sync(const CancelToken* cancel) const;
  // Moves the finished directory into place (exchanging it with the old destination when
  // forced); for Kind::kFile, each of `files` (each rename atomic), then the manifest. Then
  // fsyncs the parent directory.
  void commit();

 private:
  void move_file(const std::string& from, const std::string& to) const;

  std::string dest_, temp_;
  int lock_fd_ = -1;
  std::vector<std::string> files_;
  Kind kind_ = Kind::kDirectory;
  bool force_ = false, committed_ = false;
  std::vector<std::string> notes_;
};

// Every check OutputDir's constructor makes before it creates anything (so that --dry-run can make
// them too): the sources, an existing destination without `force`, a directory where `kind` wants a
// file, a missing parent directory.
void check_output(const std::string& destination, bool force, const std::vector<std::string>& sources,
                  OutputDir::Kind kind = OutputDir::Kind::kDirectory, const std::vector<std::string>& files = {});

// Refuses a destination that equals or lies inside `source`, or that would delete it.
void check_destination(const std::string& destination, const std::string& source, bool force);

// "out/" and "out//" name "out" (a destination as the user typed it); "/" stays.
std::string without_trailing_slashes(std::string p);

// The process's umask, read without changing it (/proc/self/status; umask(2) as a fallback).
unsigned current_umask();

}  // namespace ckpt
