// XXH3-64 compiled for AVX2 (hash.cpp calls it where the CPU has AVX2). The digest is the same
// whatever the vector width: XXH3 defines one result, computed by SSE2, AVX2 or scalar code alike.
// Built as a translation unit of its own with -mavx2 (CMakeLists.txt); it includes nothing but
// xxhash.h, whose functions are static here, so no AVX2 code can be shared with other units. The
// SSE2 path, the x86-64 baseline, hashed 4.9-5.2 GB/s on the 2-core machine against 11-13 GB/s for
// this one, and every byte a command writes is hashed once.
#if defined(__x86_64__)
#include <cstddef>
#include <cstdint>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckpt::detail {

uint64_t hash_bytes_avx2(const void* data, size_t n) { return XXH3_64bits(data, n); }

}  // namespace ckpt::detail
#endif
