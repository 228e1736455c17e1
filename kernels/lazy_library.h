// A CUDA library loaded on first use (dlopen/dlsym) instead of linked: the one implementation
// behind kernels/cublas_lazy.cpp (cuBLAS, cuBLASLt) and kernels/cusolver_lazy.cpp (cuSOLVER).
//
// Linking those libraries normally makes the dynamic loader relocate them (libcublasLt alone is
// over 500 MB) when any subcommand starts, GPU or not. Instead the binary defines the few entry
// points ckpt uses, each resolving the real function the first time it is called. A missing
// library makes each call return the library's own "not initialized" status, which callers
// already report; load_error() says why.
#pragma once

#include <mutex>
#include <string>

namespace ckpt::cuda {

class LazyLibrary {
 public:
  // base "libcusolver", major the SONAME version of the headers built against (CUSOLVER_VER_MAJOR).
  LazyLibrary(const char* base, int major) : base_(base), major_(major) {}
  LazyLibrary(const LazyLibrary&) = delete;
  LazyLibrary& operator=(const LazyLibrary&) = delete;
  // The symbol's address, or null when the library or the symbol is missing. Thread-safe.
  void* resolve(const char* symbol);
  // Why the library could not be loaded ("" when it was, or has not been tried).
  const std::string& load_error() const { return error_; }

 private:
  const char* base_;
  int major_;
  std::once_flag once_;
  void* handle_ = nullptr;
  std::string error_;
};

}  // namespace ckpt::cuda

// Defines the C entry point `name` with the header's signature, forwarding to the library's own
// definition, or returning `unavailable` when it cannot be resolved.
#define CKPT_LAZY_FORWARD(Status, unavailable, lib, name, params, args) \
  extern "C" Status name params {                                     \
    using Fn = Status(*) params;                                      \
    static Fn fn = reinterpret_cast<Fn>((lib).resolve(#name));        \
    return fn ? fn args : (unavailable);                              \
  }
