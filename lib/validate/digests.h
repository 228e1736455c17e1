// Integrity: the digests a checkpoint's files should have (from ckpt-manifest.json, see
// core/hash.h) and the digests they have (computed from the file bytes on the CPU here, or from
// the bytes that arrived on the GPU by kernels/), and the comparison that names the file and the
// tensor that differ.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/parallel.h"
#include "core/progress_observer.h"
#include "validate/checkpoint_bytes.h"
#include "validate/linear_weights.h"

namespace ckpt::validate {

struct FileDigests {
  uint64_t size = 0;
  uint64_t header = 0;                                      // XXH3-64 of the 8 + N header bytes
  std::vector<std::pair<std::string, uint64_t>> tensors;    // in data order
};

struct ExpectedDigests {
  // Weight files by their path as opened (Checkpoint::files[i].path), with the manifest that
  // listed them.
  std::map<std::string, std::pair<std::string, FileDigests>> files;
  std::vector<std::string> manifests;  // the manifests read
  const FileDigests* find(const std::string& path) const;
};

// Reads every ckpt-manifest.json in `root` and in each checkpoint's directory, checks the small
// files it lists (config, tokenizer: size and digest) and that every file it lists exists, and
// maps each listed weight file of `checkpoints` to its expected digests. Problems go to `fail`
// (check "manifest"); a weight file no manifest lists is one when any manifest exists.
ExpectedDigests load_manifests(const std::string& root, const std::vector<const Checkpoint*>& checkpoints,
                               const FailFn& fail);

// The tensors of file `file_index` of a checkpoint: (name, absolute offset, byte size), data order.
struct TensorExtent {
  std::string name;
  uint64_t offset = 0, nbytes = 0;
};
std::vector<TensorExtent> file_tensors(const Checkpoint& ck, size_t file_index);

// The pieces a file's tensor digests are made of (core/hash.h): every 1 MiB block of every tensor,
// tensor by tensor, as (absolute file offset, length); first_block[t] is tensor t's first block
// (one entry past the last tensor too). For work that hashes blocks as it streams them (stage).
struct DigestBlocks {
  std::vector<TensorExtent> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> blocks;
  std::vector<size_t> first_block;
};
DigestBlocks digest_blocks(const Checkpoint& ck, size_t file_index);
// The tensor digests (data order) from the digests of `plan.blocks`, in the same order.
std::vector<std::pair<std::string, uint64_t>> combine_blocks(const DigestBlocks& plan,
                                                             const std::vector<uint64_t>& block_digests);

// Digests of one safetensors file of `ck` computed from its bytes (`bytes`, made for `ck`: mapped
// from disk, or decoded from a packed checkpoint). Hashes its 1 MiB blocks on `workers`' threads
// (checking its token), telling `progress` the bytes.
FileDigests compute_file_digests(const Checkpoint& ck, const CheckpointBytes& bytes, size_t file_index,
                                 const Workers& workers = {}, ProgressObserver* progress = nullptr);

// Compares computed digests with expected ones; each difference is a failure (check "checksum")
// naming the file and the tensor. `source` says where `got` came from ("gpu", "cpu").
void compare_digests(const std::string& file, const FileDigests& expected, const FileDigests& got,
                     const std::string& source, const FailFn& fail);

}  // namespace ckpt::validate
