#include "gpu_digests.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/hash.h"
#include "hash_kernels.h"

namespace ckpt::cuda {

void prepare_gpu_hashing() {
  static_assert(sizeof(XXH3_kSecret) == 192, "XXH3 default secret is 192 bytes");
  CKPT_CUDA(xxh3_upload_secret(XXH3_kSecret));
}

std::vector<validate::FileDigests> gpu_file_digests(const Checkpoint& ck, const std::vector<LoadedFile>& files,
                                                    double* hash_seconds) {
  prepare_gpu_hashing();
  // Device arrays: one slot per header and per tensor digest, one per 1 MiB block.
  std::vector<std::vector<validate::TensorExtent>> tensors;
  size_t digest_slots = 0, block_slots = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    tensors.push_back(validate::file_tensors(ck, f));
    digest_slots += 1 + tensors.back().size();
    for (const auto& t : tensors.back()) block_slots += hash_block_count(t.nbytes);
  }
  DeviceBuffer digests(digest_slots * 8), blocks(block_slots * 8 + 8);
  uint64_t* d_digests = digests.as<uint64_t>();
  uint64_t* d_blocks = blocks.as<uint64_t>();
  // Pass 1: headers and blocks. Pass 2: each tensor's block digests combined.
  std::vector<HashSegment> pass1, pass2;
  size_t ds = 0, bs = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const uint8_t* base = files[f].bytes.data();
    uint64_t header_len = 0;
    CKPT_CUDA(cudaMemcpy(&header_len, base, 8, cudaMemcpyDeviceToHost));
    header_len = std::min<uint64_t>(header_len, files[f].bytes.size() - 8);  // a corrupt length hashes what is there
    pass1.push_back({base, 8 + header_len, d_digests + ds++});
    for (const auto& t : tensors[f]) {
      const size_t first = bs;
      for (uint64_t off = 0; off < t.nbytes; off += kHashBlockBytes)
        pass1.push_back({base + t.offset + off, std::min(kHashBlockBytes, t.nbytes - off), d_blocks + bs++});
      pass2.push_back({reinterpret_cast<const uint8_t*>(d_blocks + first), (bs - first) * 8, d_digests + ds++});
    }
  }
  DeviceBuffer seg1(pass1.size() * sizeof(HashSegment)), seg2(pass2.size() * sizeof(HashSegment));
  CKPT_CUDA(cudaMemcpy(seg1.data(), pass1.data(), pass1.size() * sizeof(HashSegment), cudaMemcpyHostToDevice));
  CKPT_CUDA(cudaMemcpy(seg2.data(), pass2.data(), pass2.size() * sizeof(HashSegment), cudaMemcpyHostToDevice));
  const Event b = new_event(), e = new_event();
  CKPT_CUDA(cudaEventRecord(b, 0));
  CKPT_CUDA(xxh3_hash_segments(seg1.as<HashSegment>(), pass1.size(), 0));
  CKPT_CUDA(xxh3_hash_segments(seg2.as<HashSegment>(), pass2.size(), 0));
  CKPT_CUDA(cudaEventRecord(e, 0));
  CKPT_CUDA(cudaEventSynchronize(e));
  float ms = 0;
  CKPT_CUDA(cudaEventElapsedTime(&ms, b, e));
  *hash_seconds = ms / 1e3;
  std::vector<uint64_t> host(digest_slots);
  CKPT_CUDA(cudaMemcpy(host.data(), d_digests, digest_slots * 8, cudaMemcpyDeviceToHost));
  std::vector<validate::FileDigests> out;
  ds = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    validate::FileDigests d;
    d.size = files[f].bytes.size();
    d.header = host[ds++];
    for (const auto& t : tensors[f]) d.tensors.emplace_back(t.name, host[ds++]);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace ckpt::cuda
