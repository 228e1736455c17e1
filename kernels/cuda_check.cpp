#include "cuda_check.h"

#include <string>

#include "core/error.h"
#include "cufile_api.h"

namespace ckpt::cuda {

void check_cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess)
    fail(Errc::kIo, "", "",
         std::string("CUDA error in ") + call + ": " + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")");
}

void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(Errc::kIo, "", "", std::string("cuBLAS error in ") + call + ": " + cublasGetStatusString(status));
}

namespace {

const char* cusolver_status_name(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "cuSOLVER status";
  }
}

}  // namespace

void check_cusolver(cusolverStatus_t status, const char* call) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  std::string text = std::string("cuSOLVER error in ") + call + ": " + cusolver_status_name(status) + " (" +
                     std::to_string(static_cast<int>(status)) + ")";
  if (!cusolver_load_error().empty()) text += ": " + cusolver_load_error();
  fail(Errc::kIo, "", "", text);
}

void check_cufile(const cufile::Error& status, const char* call) {
  if (status.err == cufile::kSuccess) return;
  std::string text = std::string("cuFile error in ") + call + ": " + cufile::op_error_name(status.err);
  // A CUDA driver failure inside cuFile carries its CUresult (a driver API code, not cudaError_t).
  if (status.err == cufile::kCudaDriverError) text += " (CUresult " + std::to_string(status.cu_err) + ")";
  fail(Errc::kIo, "", "", text);
}

Stream new_stream() {
  Stream s;
  CKPT_CUDA(cudaStreamCreateWithFlags(s.out(), cudaStreamNonBlocking));
  return s;
}

Event new_event() {
  Event e;
  CKPT_CUDA(cudaEventCreate(e.out()));
  return e;
}

CaptureGuard::~CaptureGuard() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &status) != cudaSuccess || status == cudaStreamCaptureStatusNone) return;
  Graph partial;
  (void)cudaStreamEndCapture(stream_, partial.out());
}

DeviceBuffer::DeviceBuffer(size_t size) : size_(size) { CKPT_CUDA(cudaMalloc(&ptr_, size + 16)); }

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    size_ = o.size_;
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

void DeviceBuffer::reserve(size_t size) {
  if (ptr_ && size <= size_) return;
  *this = DeviceBuffer();      // free first: the old and the new are never held together
  *this = DeviceBuffer(size);  // a throw leaves *this empty
}

PinnedBuffer::PinnedBuffer(size_t size) : size_(size) { CKPT_CUDA(cudaHostAlloc(&ptr_, size, cudaHostAllocDefault)); }

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = o.ptr_;
    size_ = o.size_;
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

void PinnedBuffer::reserve(size_t size) {
  if (ptr_ && size <= size_) return;
  *this = PinnedBuffer();
  *this = PinnedBuffer(size > 0 ? size : 1);  // cudaHostAlloc of 0 bytes gives no pointer
}

ThreadWorkspace::ThreadWorkspace() : stream_(new_stream()) {}

ThreadWorkspace& ThreadWorkspace::mine() {
  thread_local ThreadWorkspace w;
  return w;
}

}  // namespace ckpt::cuda
