// The load phase: every file of a target read with parallel preads into pinned staging buffers
// and copied to the GPU on one stream per reader thread, so reads and host-to-device copies
// overlap; read time and copy time are measured separately (as the union of their busy
// intervals), and the pinned host-to-device bandwidth of this machine is measured beside them.
// A file inside a packed checkpoint (formats/packed_source.h) is decoded into the staging buffers
// by the same threads: decoding is its "read", overlapped with the copies in the same way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "cuda_check.h"

namespace ckpt::cuda {

struct LoadedFile {
  std::string path;
  DeviceBuffer bytes;  // the whole file, header included
};

struct LoadTiming {
  uint64_t bytes = 0;
  double wall_s = 0;          // first read to last copy done
  double read_busy_s = 0;     // time some thread was inside pread (or decoding a packed file)
  double read_thread_s = 0;   // the same summed over threads (per-thread decode rate)
  bool decoded = false;       // some file was inside a packed checkpoint
  double h2d_busy_s = 0;      // time some copy was running on the GPU (event timestamps)
  double setup_s = 0;         // pinned staging allocation, device allocation, events
  int threads = 0;
  uint64_t chunk_bytes = 0;
};

// Reads on workers.threads threads (0: one per CPU, at most 16) and stops on workers' token.
std::vector<LoadedFile> load_files_to_device(const std::vector<std::string>& paths, LoadTiming* timing,
                                             const Workers& workers);

struct H2dFloor {
  double best_gbps = 0, median_gbps = 0;
  uint64_t bytes = 0;
  int reps = 0;
};
// cudaMemcpyAsync of one pinned buffer to the device, `reps` times after a warm-up copy.
H2dFloor measure_pinned_h2d(uint64_t bytes, int reps);

}  // namespace ckpt::cuda
