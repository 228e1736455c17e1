// Atomic output directories. Everything is written into a temporary sibling of the destination
// and renamed into place only when the whole run succeeded; a failed or interrupted run removes
// the temporary directory, so nothing half-written is ever left under the destination's name.
#pragma once

#include <string>
#include <vector>

namespace ckpt {

class OutputDir {
 public:
  // Refuses an existing destination unless `force`, a destination that is a source or lies
  // inside one, and (with `force`) a destination that contains a source, which replacing it
  // would delete. Creates the temporary sibling.
  OutputDir(const std::string& destination, bool force, const std::vector<std::string>& sources);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& temp_path() const { return temp_; }
  std::string path_of(const std::string& name) const;  // a file inside the temporary directory
  // Moves the finished directory into place (replacing the old destination when forced).
  void commit();

 private:
  std::string dest_, temp_;
  bool force_ = false, committed_ = false;
};

// Every check OutputDir's constructor makes before it creates anything (so that --dry-run can make
// them too): the sources, an existing destination without `force`, a missing parent directory.
void check_output(const std::string& destination, bool force, const std::vector<std::string>& sources);

// Refuses a destination that equals or lies inside `source`, or that would delete it.
void check_destination(const std::string& destination, const std::string& source, bool force);

}  // namespace ckpt
