// An owner for an opaque handle a C API hands out (kernels/cuda_check.h: the CUDA runtime's
// streams, events and graphs, cuBLAS and cuBLASLt handles, matmul descriptors, layouts and
// preferences): the handle is destroyed exactly once when its owner goes out of scope, so a check
// that throws between a create and its destroy leaks nothing.
#pragma once

#include <utility>

namespace ckpt {

// Owns one handle of type T (T{} means none) and calls Destroy(h) on it. Create into out(), which
// destroys what was held first, and pass the handle itself (it converts to T) to the API:
//   UniqueHandle<cudaEvent_t, cudaEventDestroy> e;
//   CKPT_CUDA(cudaEventCreate(e.out()));
//   CKPT_CUDA(cudaEventRecord(e, stream));
template <class T, auto Destroy>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  UniqueHandle(UniqueHandle&& o) noexcept : h_(std::exchange(o.h_, T{})) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, T{});
    }
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  T get() const { return h_; }
  operator T() const { return h_; }
  T* out() {
    reset();
    return &h_;
  }
  // Destroys the handle now. The destroy call's status is ignored, as in any destructor: there is
  // nothing left to do about a handle that failed to go away.
  void reset() {
    if (h_ != T{}) (void)Destroy(std::exchange(h_, T{}));
  }

 private:
  T h_{};
};

}  // namespace ckpt
