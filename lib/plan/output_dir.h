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
  // the one output file itself (`ckpt gguf SRC OUT.gguf`): the temporary directory then holds
  // that file and the manifest, and commit() renames the file onto the destination and the
  // manifest onto "<destination>.ckpt-manifest.json" beside it.
  enum class Kind { kDirectory, kFile };
  // Refuses an existing destination unless `force`, a destination that is a source or lies
  // inside one, and (with `force`) a destination that contains a source, which replacing it
  // would delete. Creates the temporary sibling.
  OutputDir(const std::string& destination, bool force, const std::vector<std::string>& sources,
            Kind kind = Kind::kDirectory);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& temp_path() const { return temp_; }
  std::string path_of(const std::string& name) const;  // a file inside the temporary directory
  // Moves the finished directory into place (replacing the old destination when forced); for
  // Kind::kFile, the file `file_name` of the temporary directory and its manifest.
  void commit(const std::string& file_name = "");

 private:
  std::string dest_, temp_;
  Kind kind_ = Kind::kDirectory;
  bool force_ = false, committed_ = false;
};

// Refuses a destination that equals or lies inside `source`, or that would delete it.
void check_destination(const std::string& destination, const std::string& source, bool force);

}  // namespace ckpt
