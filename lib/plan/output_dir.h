// Atomic output directories. Everything is written into a temporary sibling of the destination
// and renamed into place only when the whole run succeeded; a failed or interrupted run removes
// the temporary directory, so nothing half-written is ever left under the destination's name.
#pragma once

#include <string>
#include <vector>

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
  // replacing it would delete. Creates the temporary sibling.
  OutputDir(const std::string& destination, bool force, const std::vector<std::string>& sources,
            Kind kind = Kind::kDirectory, const std::vector<std::string>& files = {});
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& temp_path() const { return temp_; }
  std::string path_of(const std::string& name) const;  // a file inside the temporary directory
  // Moves the finished directory into place (replacing the old destination when forced); for
  // Kind::kFile, each of `files` (each rename atomic), then the manifest.
  void commit();

 private:
  std::string dest_, temp_;
  std::vector<std::string> files_;
  Kind kind_ = Kind::kDirectory;
  bool force_ = false, committed_ = false;
};

// Every check OutputDir's constructor makes before it creates anything (so that --dry-run can make
// them too): the sources, an existing destination without `force`, a directory where `kind` wants a
// file, a missing parent directory.
void check_output(const std::string& destination, bool force, const std::vector<std::string>& sources,
                  OutputDir::Kind kind = OutputDir::Kind::kDirectory, const std::vector<std::string>& files = {});

// Refuses a destination that equals or lies inside `source`, or that would delete it.
void check_destination(const std::string& destination, const std::string& source, bool force);

}  // namespace ckpt
