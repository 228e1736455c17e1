// The integrity phase's computation: the manifest digests (core/hash.h) of files already in GPU
// memory, computed there by the XXH3 kernels from the bytes that arrived.
#pragma once

#include <vector>

#include "checkpoint/checkpoint.h"
#include "device_loader.h"
#include "validate/digests.h"

namespace ckpt::cuda {

// Digests of every file of `ck` (files[i] holds ck.files[i]'s bytes); `hash_seconds` receives the
// GPU time of the hash kernels alone.
std::vector<validate::FileDigests> gpu_file_digests(const Checkpoint& ck, const std::vector<LoadedFile>& files,
                                                    double* hash_seconds);

// Uploads xxHash's default secret to the current device (idempotent).
void prepare_gpu_hashing();

}  // namespace ckpt::cuda
