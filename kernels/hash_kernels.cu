// XXH3-64, written from the xxHash specification (doc/xxhash_spec.md of Cyan4973/xxHash): the
// short paths (0-3, 4-8, 9-16, 17-128, 129-240 bytes) run on every lane of the warp alike; the
// long path (> 240 bytes) splits each 1 KiB block (16 stripes x 64 bytes) over the 32 lanes.
//
// Why a warp can share the long path: within one block, the accumulators only receive sums
// (acc[i^1] += data, acc[i] += lo32(data^key) * hi32(data^key)), so the 16 stripes' contributions
// may be added in any order; only the scramble at the end of a block is sequential. Lane l takes
// stripe l/2 and the accumulator half l&1 (4 of the 8 u64 lanes), so a warp reads each block as
// one contiguous, coalesced 1 KiB; a butterfly over the lanes of equal parity sums the stripes.
#include "hash_kernels.h"

namespace ckpt::cuda {

namespace {

constexpr uint64_t kP32_1 = 0x9E3779B1ull, kP32_2 = 0x85EBCA77ull, kP32_3 = 0xC2B2AE3Dull;
constexpr uint64_t kP64_1 = 0x9E3779B185EBCA87ull, kP64_2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP64_3 = 0x165667B19E3779F9ull, kP64_4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kP64_5 = 0x27D4EB2F165667C5ull;
constexpr uint64_t kPMX1 = 0x165667919E3779F9ull, kPMX2 = 0x9FB21C651E98DF25ull;
constexpr int kSecretSize = 192, kStripe = 64, kStripesPerBlock = (kSecretSize - kStripe) / 8;  // 16
constexpr uint64_t kBlock = kStripe * kStripesPerBlock;                                        // 1024

__constant__ uint8_t c_secret[kSecretSize];

__device__ __forceinline__ uint64_t secret64(int off) {
  uint64_t v = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(c_secret[off + i]) << (8 * i);
  return v;
}
__device__ __forceinline__ uint32_t secret32(int off) { return static_cast<uint32_t>(secret64(off)); }

// Little-endian loads at any alignment (the GPU is little-endian).
__device__ __forceinline__ uint64_t read64(const uint8_t* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const unsigned mis = a & 7;
  const uint64_t* w = reinterpret_cast<const uint64_t*>(a - mis);
  if (mis == 0) return w[0];
  return (w[0] >> (8 * mis)) | (w[1] << (64 - 8 * mis));
}
__device__ __forceinline__ uint32_t read32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

__device__ __forceinline__ uint64_t mul128_fold64(uint64_t a, uint64_t b) { return (a * b) ^ __umul64hi(a, b); }
__device__ __forceinline__ uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
__device__ __forceinline__ uint64_t swap64(uint64_t x) { return __byte_perm(static_cast<uint32_t>(x >> 32), 0, 0x0123) | (static_cast<uint64_t>(__byte_perm(static_cast<uint32_t>(x), 0, 0x0123)) << 32); }

__device__ __forceinline__ uint64_t xxh64_avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kP64_2;
  h ^= h >> 29;
  h *= kP64_3;
  return h ^ (h >> 32);
}
__device__ __forceinline__ uint64_t avalanche(uint64_t h) {
  h ^= h >> 37;
  h *= kPMX1;
  return h ^ (h >> 32);
}
__device__ __forceinline__ uint64_t rrmxmx(uint64_t h, uint64_t len) {
  h ^= rotl64(h, 49) ^ rotl64(h, 24);
  h *= kPMX2;
  h ^= (h >> 35) + len;
  h *= kPMX2;
  return h ^ (h >> 28);
}
__device__ __forceinline__ uint64_t mix16(const uint8_t* p, int secret_off) {
  return mul128_fold64(read64(p) ^ secret64(secret_off), read64(p + 8) ^ secret64(secret_off + 8));
}

__device__ uint64_t hash_short(const uint8_t* p, uint64_t len) {
  if (len == 0) return xxh64_avalanche(secret64(56) ^ secret64(64));
  if (len <= 3) {
    const uint32_t c1 = p[0], c2 = p[len >> 1], c3 = p[len - 1];
    const uint32_t combined = (c1 << 16) | (c2 << 24) | c3 | (static_cast<uint32_t>(len) << 8);
    const uint64_t bitflip = static_cast<uint64_t>(secret32(0) ^ secret32(4));
    return xxh64_avalanche(static_cast<uint64_t>(combined) ^ bitflip);
  }
  if (len <= 8) {
    const uint64_t in1 = read32(p), in2 = read32(p + len - 4);
    const uint64_t bitflip = secret64(8) ^ secret64(16);
    return rrmxmx((in2 + (in1 << 32)) ^ bitflip, len);
  }
  if (len <= 16) {
    const uint64_t lo = read64(p) ^ (secret64(24) ^ secret64(32));
    const uint64_t hi = read64(p + len - 8) ^ (secret64(40) ^ secret64(48));
    return avalanche(len + swap64(lo) + hi + mul128_fold64(lo, hi));
  }
  uint64_t acc = len * kP64_1;
  if (len <= 128) {
    if (len > 32) {
      if (len > 64) {
        if (len > 96) acc += mix16(p + 48, 96) + mix16(p + len - 64, 112);
        acc += mix16(p + 32, 64) + mix16(p + len - 48, 80);
      }
      acc += mix16(p + 16, 32) + mix16(p + len - 32, 48);
    }
    acc += mix16(p, 0) + mix16(p + len - 16, 16);
    return avalanche(acc);
  }
  // 129..240 bytes.
  for (int i = 0; i < 8; ++i) acc += mix16(p + 16 * i, 16 * i);
  acc = avalanche(acc);
  uint64_t acc_end = mix16(p + len - 16, 136 - 17);
  const int rounds = static_cast<int>(len / 16);
  for (int i = 8; i < rounds; ++i) acc_end += mix16(p + 16 * i, 16 * (i - 8) + 3);
  return avalanche(acc + acc_end);
}

// The contribution of one 32-byte half stripe to accumulator lanes half*4 .. half*4+3.
__device__ __forceinline__ void accumulate_half(const uint8_t* p, const uint64_t key[4], uint64_t c[4]) {
  uint64_t d[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) d[i] = read64(p + 8 * i);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint64_t dk = d[i] ^ key[i];
    c[i ^ 1] += d[i];
    c[i] += (dk & 0xFFFFFFFFull) * (dk >> 32);
  }
}

// Sums c over the 16 lanes of this lane's parity.
__device__ __forceinline__ void reduce_parity(uint64_t c[4]) {
#pragma unroll
  for (int off = 2; off < 32; off <<= 1)
#pragma unroll
    for (int i = 0; i < 4; ++i) c[i] += __shfl_xor_sync(0xFFFFFFFFu, c[i], off);
}

__device__ uint64_t hash_long_warp(const uint8_t* p, uint64_t len, int lane) {
  const int stripe = lane >> 1, half = lane & 1;
  const uint64_t init_lo[4] = {kP32_3, kP64_1, kP64_2, kP64_3}, init_hi[4] = {kP64_4, kP32_2, kP64_5, kP32_1};
  uint64_t acc[4], key[4], scramble_key[4], last_key[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int j = half * 4 + i;
    acc[i] = half ? init_hi[i] : init_lo[i];
    key[i] = secret64(8 * stripe + 8 * j);
    scramble_key[i] = secret64(kSecretSize - kStripe + 8 * j);
    last_key[i] = secret64(kSecretSize - kStripe - 7 + 8 * j);
  }
  const uint64_t blocks = (len - 1) / kBlock;
  const uint8_t* mine = p + stripe * kStripe + half * 32;
  for (uint64_t b = 0; b < blocks; ++b) {
    uint64_t c[4] = {0, 0, 0, 0};
    accumulate_half(mine + b * kBlock, key, c);
    reduce_parity(c);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint64_t a = acc[i] + c[i];
      a ^= a >> 47;
      a ^= scramble_key[i];
      acc[i] = a * kP32_1;
    }
  }
  // The last, partial block's whole stripes, and the stripe ending at the last byte.
  const uint64_t stripes = ((len - 1) - kBlock * blocks) / kStripe;
  uint64_t c[4] = {0, 0, 0, 0};
  if (static_cast<uint64_t>(stripe) < stripes) accumulate_half(mine + blocks * kBlock, key, c);
  if (stripe == 0) accumulate_half(p + len - kStripe + half * 32, last_key, c);
  reduce_parity(c);
  uint64_t full[4], other[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    full[i] = acc[i] + c[i];
    other[i] = __shfl_xor_sync(0xFFFFFFFFu, full[i], 1);
  }
  // Even lanes now hold acc[0..3] in full and acc[4..7] in other; odd lanes the reverse.
  uint64_t a[8];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    a[i] = half ? other[i] : full[i];
    a[4 + i] = half ? full[i] : other[i];
  }
  uint64_t result = len * kP64_1;
#pragma unroll
  for (int i = 0; i < 4; ++i) result += mul128_fold64(a[2 * i] ^ secret64(11 + 16 * i), a[2 * i + 1] ^ secret64(11 + 16 * i + 8));
  return avalanche(result);
}

__global__ void hash_segments_kernel(const HashSegment* segments, uint64_t count) {
  const uint64_t warp = (static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (warp >= count) return;  // whole warps exit together
  const HashSegment s = segments[warp];
  const uint64_t h = s.len <= 240 ? hash_short(s.data, s.len) : hash_long_warp(s.data, s.len, lane);
  if (lane == 0) *s.out = h;
}

}  // namespace

cudaError_t xxh3_upload_secret(const uint8_t secret[192]) {
  return cudaMemcpyToSymbol(c_secret, secret, kSecretSize);
}

cudaError_t xxh3_hash_segments(const HashSegment* segments, uint64_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const uint64_t blocks = (count * 32 + kThreads - 1) / kThreads;
  hash_segments_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(segments, count);
  return cudaGetLastError();
}

}  // namespace ckpt::cuda
