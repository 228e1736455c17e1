// XXH3-64 (seed 0, default secret) on the GPU, bit-identical to the xxHash library, for the
// manifest digests of core/hash.h: one warp hashes one byte segment of any length and alignment
// (the 1 MiB blocks of a tensor, a header, or an array of digests to combine). C-style so that
// C++20 host code can call it; the kernels are in hash_kernels.cu.
#pragma once

#include <cuda_runtime.h>
#include <cstdint>

namespace ckpt::cuda {

struct HashSegment {
  const uint8_t* data;  // device pointer; may be unaligned. Up to 7 bytes past data + len may be
                        // read (never used): allocations must have 16 bytes of slack.
  uint64_t len;
  uint64_t* out;        // device pointer receiving the digest
};

// Copies the library's default secret into constant memory on the current device (once per
// device before the first hash).
cudaError_t xxh3_upload_secret(const uint8_t secret[192]);
// Hashes `count` segments (an array in device memory), one warp each.
cudaError_t xxh3_hash_segments(const HashSegment* segments, uint64_t count, cudaStream_t stream);

}  // namespace ckpt::cuda
