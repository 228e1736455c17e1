// Reads from files straight into GPU memory through cuFile (GPUDirect Storage): with the nvidia-fs
// kernel driver, the NVMe DMA-writes into GPU memory in one transfer, with no host copy; without
// it, libcufile's compatibility mode reads through its own host bounce buffers (POSIX reads and
// copies inside the library), which works on any file system. Every handle is owned (RAII) and
// every call checked through kernels/cuda_check.h.
#pragma once

#include <cstdint>
#include <string>

#include "core/file_io.h"
#include "cufile_api.h"

namespace ckpt::cuda {

// Whether the nvidia-fs kernel module is loaded (without it cuFile can only run in compatibility
// mode).
bool nvidia_fs_loaded();

// A cuFile driver session: cuFileDriverOpen, and cuFileDriverClose when it ends. Throws (one line,
// through check_cufile) when the library is missing or the driver will not open.
class GdsDriver {
 public:
  GdsDriver();
  ~GdsDriver();
  GdsDriver(const GdsDriver&) = delete;
  GdsDriver& operator=(const GdsDriver&) = delete;
  // "gds" with the nvidia-fs driver, else "gds (compatibility mode)".
  const char* mode() const { return nvidia_fs_ ? "gds" : "gds (compatibility mode)"; }

 private:
  bool nvidia_fs_ = false;
};

// A file opened for cuFile reads and registered with cuFileHandleRegister (deregistered and
// closed at the end). With the nvidia-fs driver the file is opened O_DIRECT (DMA needs it; a
// file system without O_DIRECT gets a plain descriptor, which cuFile reads in compatibility
// mode); without the driver it is opened plainly, so compatibility reads use the page cache as
// the POSIX path does.
class GdsFile {
 public:
  GdsFile(const std::string& path, bool direct);
  ~GdsFile();
  GdsFile(const GdsFile&) = delete;
  GdsFile& operator=(const GdsFile&) = delete;
  // Reads exactly n bytes at file offset `offset` into device memory base + dev_offset, where
  // `base` is the start of a (registered or not) device allocation.
  void read(void* base, uint64_t n, uint64_t offset, uint64_t dev_offset) const;
  const std::string& path() const { return file_.path(); }

 private:
  File file_;            // the plain descriptor: refuses what is not a regular file, as every read does
  int direct_fd_ = -1;   // the same file opened O_DIRECT, when asked and the file system takes it
  cufile::Handle handle_ = nullptr;
};

// A device allocation registered with cuFileBufRegister (deregistered at the end), so that reads
// into it need no bounce buffer of the library's own.
class GdsBuffer {
 public:
  GdsBuffer(void* base, uint64_t n);
  ~GdsBuffer();
  GdsBuffer(GdsBuffer&& o) noexcept : base_(o.base_) { o.base_ = nullptr; }
  GdsBuffer(const GdsBuffer&) = delete;
  GdsBuffer& operator=(const GdsBuffer&) = delete;

 private:
  void* base_ = nullptr;
};

}  // namespace ckpt::cuda
