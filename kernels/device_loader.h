// The load phase: every file of a target read into GPU memory in chunks by parallel reader
// threads, either (posix) with preads into pinned staging buffers copied to the GPU on one stream
// per reader thread, so reads and host-to-device copies overlap, or (gds) with cuFile reads
// straight into GPU memory (kernels/gds_reader.h). A file inside a packed checkpoint
// (formats/packed_source.h) is decoded into the staging buffers by the same threads: decoding is
// its "read", overlapped with the copies in the same way (gds cannot read it: posix is used). Read
// time and copy time are measured separately (as the union of their busy intervals), and so is the
// time until the first layer's tensors are all resident; the pinned host-to-device bandwidth of
// this machine is measured beside them.
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

// How the bytes are read: posix, gds (cuFile; posix with the reason when cuFile cannot run), or
// auto (the faster of the two on a sample of the load, measured in place).
enum class IoMode { kPosix, kGds, kAuto };
// "posix", "gds", "auto"; anything else throws Errc::kInvalidArgument.
IoMode parse_io_mode(const std::string& text);

struct LoadRequest {
  std::vector<std::string> paths;
  IoMode io = IoMode::kPosix;
  // Per file (empty, or one entry per path): the byte ranges [begin, end) of the first layer's
  // tensors, whose arrival on the GPU is timed.
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> first_layer;
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
  std::string io = "posix";   // what read the bytes: "posix", "gds", "gds (compatibility mode)"
  std::string io_note;        // why: the fallback's reason, auto's measurement
  double first_layer_s = -1;  // first read to the first layer's last byte on the GPU; -1: none asked
  uint64_t first_layer_bytes = 0;
};

// Reads on workers.threads threads (0: one per CPU, at most 16) and stops on workers' token.
std::vector<LoadedFile> load_files_to_device(const LoadRequest& request, LoadTiming* timing, const Workers& workers);

struct H2dFloor {
  double best_gbps = 0, median_gbps = 0;
  uint64_t bytes = 0;
  int reps = 0;
};
// cudaMemcpyAsync of one pinned buffer to the device, `reps` times after a warm-up copy.
H2dFloor measure_pinned_h2d(uint64_t bytes, int reps);

}  // namespace ckpt::cuda
