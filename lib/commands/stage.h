// `ckpt stage`: a checkpoint copied once into shared memory (/dev/shm, a tmpfs), so that every
// validation or serving process on the host maps the same pages instead of reading the disk
// again (the seed's "shared memory" loading strategy; `ckpt validate --from-shm NAME` loads from
// there). A TP/PP output root is staged whole: its own files and each rank's directory.
//
// The copy is an output like any other (plan/output_dir.h): written into a temporary sibling and
// renamed into place, refused over an existing name unless forced. Where the source has a
// ckpt-manifest.json, each 1 MiB block of its weight files is hashed as it is copied (read once,
// hashed, written) and the copy is refused unless every digest matches, so what the processes
// will map is what the manifest names. A marker file, ckpt-staged.json, says the directory is a
// staged copy: `--drop` and `--from-shm` touch nothing else under the shared-memory root.
#pragma once

#include <cstdint>
#include <string>

#include "core/cancel.h"
#include "core/progress_observer.h"

namespace ckpt {

inline constexpr const char* kDefaultShmRoot = "/dev/shm";
inline constexpr const char* kStagedMarkerName = "ckpt-staged.json";

struct StageOptions {
  std::string shm_root = kDefaultShmRoot;  // where staged copies live
  bool force = false;                      // replace an existing staged copy of that name
  int threads = 0;
  const CancelToken* cancel = nullptr;
  ProgressObserver* progress = nullptr;
};

struct StageReport {
  std::string path;            // the staged directory
  uint64_t files = 0, bytes = 0;
  uint64_t verified_files = 0;  // weight files whose copied bytes matched the manifest
  bool manifest = false;        // the source had a ckpt-manifest.json (else nothing to verify against)
  uint64_t free_bytes = 0;      // free space of the root before copying
  double seconds = 0;
};

// The staged directory of NAME under `shm_root`. NAME is one plain path component of letters,
// digits, '.', '_' and '-', not starting with '.' (a usage error otherwise), so it can never
// reach outside the root.
std::string staged_path(const std::string& shm_root, const std::string& name);

// NAME when given, else the source directory's own name.
std::string stage_name_for(const std::string& source, const std::string& name);

// Copies `source` (a checkpoint directory or a TP/PP output root) to staged_path(root, name).
// Refuses, before creating anything, when the root's free space (statvfs) is less than the
// files need, naming both.
StageReport stage_checkpoint(const std::string& source, const std::string& name, const StageOptions& options);

// Removes a staged copy: renamed aside first (a process opening NAME never sees half of it),
// then deleted. Processes that still map its files keep their pages until they unmap them.
// Refuses a directory without the marker.
void drop_staged(const std::string& shm_root, const std::string& name);

// The staged directory of NAME, checked to exist and to carry the marker.
std::string find_staged(const std::string& shm_root, const std::string& name);

}  // namespace ckpt
