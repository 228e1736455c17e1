// CUDA host-side essentials, one of each: the status checks that turn a CUDA or cuBLAS failure
// into a ckpt::Error (Errc::kIo, one line naming the call and the error), owning wrappers for
// every handle the runtime and the libraries hand out (core/unique_handle.h), device and pinned host
// memory, and the per-thread stream workspace the element-wise ops run in.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/unique_handle.h"

namespace ckpt::cuda {

namespace cufile {
struct Error;  // CUfileError_t (cufile_api.h)
}

// Throw Error(Errc::kIo) when `status` is not success, one line: "CUDA error in CALL: TEXT (NAME)",
// "cuBLAS error in CALL: TEXT" or "cuFile error in CALL: NAME". Every CUDA, cuBLAS and cuFile call
// of the host code goes through these.
void check_cuda(cudaError_t status, const char* call);
void check_cublas(cublasStatus_t status, const char* call);
void check_cufile(const cufile::Error& status, const char* call);
// "cuSOLVER error in CALL: NAME" (with why the library could not be loaded, when it could not).
void check_cusolver(cusolverStatus_t status, const char* call);
#define CKPT_CUDA(call) ::ckpt::cuda::check_cuda((call), #call)
#define CKPT_CUBLAS(call) ::ckpt::cuda::check_cublas((call), #call)
#define CKPT_CUSOLVER(call) ::ckpt::cuda::check_cusolver((call), #call)
// Why libcusolver could not be loaded (kernels/cusolver_lazy.cpp), "" when it was or was not tried.
const std::string& cusolver_load_error();
#define CKPT_CUFILE(call) ::ckpt::cuda::check_cufile((call), #call)

using Stream = UniqueHandle<cudaStream_t, cudaStreamDestroy>;
using Event = UniqueHandle<cudaEvent_t, cudaEventDestroy>;
using Graph = UniqueHandle<cudaGraph_t, cudaGraphDestroy>;
using GraphExec = UniqueHandle<cudaGraphExec_t, cudaGraphExecDestroy>;
using BlasHandle = UniqueHandle<cublasHandle_t, cublasDestroy_v2>;
using LtHandle = UniqueHandle<cublasLtHandle_t, cublasLtDestroy>;
using LtMatmulDesc = UniqueHandle<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using LtLayout = UniqueHandle<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using LtPreference = UniqueHandle<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;
using SolverHandle = UniqueHandle<cusolverDnHandle_t, cusolverDnDestroy>;

// A new non-blocking stream; a new event (with timing).
Stream new_stream();
Event new_event();

// Ends a stream capture that did not reach its cudaStreamEndCapture (a check threw while work was
// being enqueued), so the stream is usable again and the partial graph is freed.
class CaptureGuard {
 public:
  explicit CaptureGuard(cudaStream_t stream) : stream_(stream) {}
  ~CaptureGuard();
  CaptureGuard(const CaptureGuard&) = delete;
  CaptureGuard& operator=(const CaptureGuard&) = delete;

 private:
  cudaStream_t stream_;
};

// cudaMalloc'd memory with 16 bytes of slack past `size` (the hash kernels may read there).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t size);
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), size_(o.size_) { o.ptr_ = nullptr; o.size_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  uint8_t* data() const { return static_cast<uint8_t*>(ptr_); }
  size_t size() const { return size_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  // Room for at least `size` bytes, keeping the allocation when it is large enough (the contents
  // are not kept when it grows). The old allocation is freed before the new one is made; when
  // that fails the buffer is empty (size() 0, data() null) and the error is thrown, so a later
  // call allocates again instead of trusting a stale capacity.
  void reserve(size_t size);

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

// cudaHostAlloc'd (pinned) host memory.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t size);
  PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(o.ptr_), size_(o.size_) { o.ptr_ = nullptr; o.size_ = 0; }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer();
  uint8_t* data() const { return static_cast<uint8_t*>(ptr_); }
  size_t size() const { return size_; }
  // As DeviceBuffer::reserve: room for `size` bytes, the contents not kept when it grows.
  void reserve(size_t size);

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

// The calling thread's stream and device buffers, for ops the executor calls from several
// threads at once (cast, FP8 quantization): a thread's calls run one after another, so they share
// its workspace; buffers grow to the largest request and live as long as the thread.
class ThreadWorkspace {
 public:
  static ThreadWorkspace& mine();
  cudaStream_t stream() const { return stream_; }
  // Buffer number `slot` with room for `bytes`, as T*.
  template <typename T = void>
  T* buffer(size_t slot, size_t bytes) {
    if (slot >= buffers_.size()) buffers_.resize(slot + 1);
    buffers_[slot].reserve(bytes);
    return buffers_[slot].as<T>();
  }

 private:
  ThreadWorkspace();
  Stream stream_;
  std::vector<DeviceBuffer> buffers_;
};

}  // namespace ckpt::cuda
