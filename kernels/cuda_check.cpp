#include "cuda_check.h"

#include <string>

#include "core/error.h"

namespace ckpt::cuda {

void check_cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess)
    fail(Errc::kCheckFailed, "", "", std::string("CUDA: ") + call + ": " + cudaGetErrorString(status));
}

void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(Errc::kCheckFailed, "", "", std::string("cuBLAS: ") + call + ": " + cublasGetStatusString(status));
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

PinnedBuffer::PinnedBuffer(size_t size) : size_(size) { CKPT_CUDA(cudaHostAlloc(&ptr_, size, cudaHostAllocDefault)); }

PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

}  // namespace ckpt::cuda
