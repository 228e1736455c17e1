// The cast kernel: each thread converts groups of 8 elements, moved with 16-byte loads and stores
// (a group is 16 bytes of F16/BF16, 32 of F32, 64 of F64), in a grid-stride loop; the last n % 8
// elements (and misaligned buffers) go element by element. Casting is memory-bound, so the goal
// is full-width coalesced traffic; the integer rounding of ops/float_convert.h costs a few ALU ops
// per element, far below the bandwidth limit.
#include "cast.h"

namespace ckpt::cuda {

namespace {

using ops::FloatFormat;
using ops::float_bits_t;

constexpr int kGroup = 8;
constexpr int kThreads = 256;

template <FloatFormat I, FloatFormat O>
__global__ void cast_groups(const uint4* __restrict__ src, uint4* __restrict__ dst, uint64_t groups) {
  using In = float_bits_t<I>;
  using Out = float_bits_t<O>;
  constexpr int kInVecs = kGroup * sizeof(In) / 16, kOutVecs = kGroup * sizeof(Out) / 16;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t g = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
    union {
      uint4 v[kInVecs];
      In e[kGroup];
    } in;
    union {
      uint4 v[kOutVecs];
      Out e[kGroup];
    } out;
#pragma unroll
    for (int k = 0; k < kInVecs; ++k) in.v[k] = src[g * kInVecs + k];
#pragma unroll
    for (int k = 0; k < kGroup; ++k) out.e[k] = ops::convert_bits<I, O>(in.e[k]);
#pragma unroll
    for (int k = 0; k < kOutVecs; ++k) dst[g * kOutVecs + k] = out.v[k];
  }
}

template <FloatFormat I, FloatFormat O>
__global__ void cast_elements(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, uint64_t n) {
  using In = float_bits_t<I>;
  using Out = float_bits_t<O>;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    In x;
    memcpy(&x, src + i * sizeof(In), sizeof(In));
    const Out y = ops::convert_bits<I, O>(x);
    memcpy(dst + i * sizeof(Out), &y, sizeof(Out));
  }
}

unsigned grid_for(uint64_t work) {
  const uint64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks ? blocks : 1) : 65536);  // grid-stride beyond
}

template <FloatFormat I, FloatFormat O>
cudaError_t launch(const void* src, void* dst, uint64_t n, cudaStream_t stream) {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  uint64_t done = 0;
  if ((reinterpret_cast<uintptr_t>(s) | reinterpret_cast<uintptr_t>(d)) % 16 == 0) {
    const uint64_t groups = n / kGroup;
    if (groups) {
      cast_groups<I, O><<<grid_for(groups), kThreads, 0, stream>>>(reinterpret_cast<const uint4*>(s),
                                                                   reinterpret_cast<uint4*>(d), groups);
    }
    done = groups * kGroup;
  }
  if (done < n) {
    cast_elements<I, O><<<grid_for(n - done), kThreads, 0, stream>>>(s + done * sizeof(float_bits_t<I>),
                                                                     d + done * sizeof(float_bits_t<O>), n - done);
  }
  return cudaGetLastError();
}

template <FloatFormat I>
cudaError_t launch_from(FloatFormat out, const void* src, void* dst, uint64_t n, cudaStream_t stream) {
  switch (out) {
    case FloatFormat::kF32: return launch<I, FloatFormat::kF32>(src, dst, n, stream);
    case FloatFormat::kF16: return launch<I, FloatFormat::kF16>(src, dst, n, stream);
    case FloatFormat::kBF16: return launch<I, FloatFormat::kBF16>(src, dst, n, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t launch_cast(FloatFormat in, FloatFormat out, const void* src, void* dst, uint64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (in) {
    case FloatFormat::kF64: return launch_from<FloatFormat::kF64>(out, src, dst, n, stream);
    case FloatFormat::kF32: return launch_from<FloatFormat::kF32>(out, src, dst, n, stream);
    case FloatFormat::kF16: return launch_from<FloatFormat::kF16>(out, src, dst, n, stream);
    case FloatFormat::kBF16: return launch_from<FloatFormat::kBF16>(out, src, dst, n, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace ckpt::cuda
