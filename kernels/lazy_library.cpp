#include "lazy_library.h"

#include <dlfcn.h>

namespace ckpt::cuda {

void* LazyLibrary::resolve(const char* symbol) {
  std::call_once(once_, [&] {
    // The soname carries the major version of the headers we were built against; the unversioned
    // name (a development install) is the fallback.
    const std::string versioned = std::string(base_) + ".so." + std::to_string(major_);
    handle_ = dlopen(versioned.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) handle_ = dlopen((std::string(base_) + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      const char* why = dlerror();
      error_ = "cannot load " + versioned + ": " + (why ? why : "not found");
    }
  });
  return handle_ ? dlsym(handle_, symbol) : nullptr;
}

}  // namespace ckpt::cuda
