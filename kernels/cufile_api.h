// The part of NVIDIA's cuFile API (GPUDirect Storage, cufile.h) the GPU loader uses, resolved from
// libcufile at run time instead of linked.
//
// Why not link it: libcufile is not part of every CUDA install (the build machines here have
// nvcc and no cufile.h; the GPU machines have the library only as the nvidia-cufile Python
// wheel), and a binary linked against it would not start where it is missing. Loaded on demand,
// the same binary runs everywhere and `validate --io gds` says why it fell back to POSIX reads
// when the library is absent. The declarations follow cufile.h's C ABI (CUfileError_t,
// CUfileDescr_t, the entry points below; NVIDIA GPUDirect Storage API reference, "cuFile API
// functional specification"); where the build finds cufile.h, kernels/gds_reader.cpp checks them
// against it at compile time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace ckpt::cuda::cufile {

// CUfileOpError values the loader tells apart (cufile.h).
enum OpError : int {
  kSuccess = 0,
  kDriverNotInitialized = 5001,
  kCudaDriverError = 5011,
};
// Values above this are cuFile errors (cufile.h CUFILEOP_BASE_ERR); cuFileRead returns them negated.
inline constexpr int kBaseError = 5000;
// CUfileFileHandleType: a Linux file descriptor.
inline constexpr int kHandleTypeOpaqueFd = 1;

struct Error {  // CUfileError_t
  int err;      // CUfileOpError
  int cu_err;   // CUresult, for kCudaDriverError
};

struct Descr {  // CUfileDescr_t
  int type;     // CUfileFileHandleType
  union {
    int fd;
    void* handle;
  } handle;
  const void* fs_ops;  // CUfileFSOps_t*: null for a plain file descriptor
};

using Handle = void*;  // CUfileHandle_t

struct Api {
  Error (*driver_open)() = nullptr;
  Error (*driver_close)() = nullptr;
  Error (*handle_register)(Handle*, Descr*) = nullptr;
  void (*handle_deregister)(Handle) = nullptr;
  Error (*buf_register)(const void*, size_t, int) = nullptr;
  Error (*buf_deregister)(const void*) = nullptr;
  ssize_t (*read)(Handle, void*, size_t, off_t, off_t) = nullptr;
  std::string library;  // the file loaded
  std::string error;    // why nothing was loaded (every place tried); empty when loaded
  bool loaded() const { return error.empty(); }
};

// Loads libcufile once (thread-safe): $CKPT_CUFILE_LIBRARY when set (and then only that), else the
// library the build found (CMake: CKPT_CUFILE_LIBRARY_PATH), else libcufile.so.0 through the
// dynamic loader's path.
const Api& api();

// "CU_FILE_DRIVER_NOT_INITIALIZED" for 5001, ...; "cuFile error N" for values it does not know.
std::string op_error_name(int err);

}  // namespace ckpt::cuda::cufile
