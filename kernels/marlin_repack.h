// The CUDA twin of the Marlin relayout (lib/ops/marlin_layout.h): qweight from GPTQ (with or
// without act-order), AWQ or compressed-tensors into Marlin's [K/16, 2N] tiles, scales permuted,
// zero points packed — the same bytes as the CPU functions and vLLM's gptq_marlin_repack /
// awq_marlin_repack (tests/gpu/test_marlin_repack_gpu.cpp). CUTLASS-style host side:
// can_implement -> run, every CUDA call checked and returned. C++17-clean for nvcc.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "int4_quant.h"  // Int4Status

namespace ckpt::cuda {

// Marlin qweight rows [kt0, kt1) of an [n, k] weight (out: row kt at out + (kt - kt0) * 2n) from
// the whole source array on the device.
struct MarlinRepackArgs {
  int source = 0;  // ops::MarlinSource: 0 GPTQ qweight [K/8, N], 1 AWQ [K, N/8], 2 compressed-tensors [N, K/8]
  uint64_t n = 0, k = 0;
  uint64_t kt0 = 0, kt1 = 0;
  const uint32_t* src = nullptr;
  const int32_t* perm = nullptr;  // act-order sort indices [K] (GPTQ, compressed-tensors), or null
  uint32_t* out = nullptr;
  // At most this many CTAs without act-order (0: as many as the GPU keeps resident). Tests set a
  // few so that each CTA walks the persistent loop over many blocks.
  uint32_t max_ctas = 0;
};

// Scales [rows, n] of 2- or 4-byte elements: vLLM's marlin_permute_scales(size_k = k, group_size)
// (or its inverse).
struct MarlinScalesArgs {
  const void* in = nullptr;
  void* out = nullptr;
  size_t elem_bytes = 2;
  uint64_t rows = 0, n = 0, k = 0;
  int64_t group_size = 128;
  bool inverse = false;
};

// Zero points of a source format -> Marlin I32 [groups, n/8] (vLLM's marlin_zero_points after
// unpacking): GPTQ qzeros [G, N/8] (stored + zero_offset), AWQ qzeros [G, N/8], compressed-tensors
// weight_zero_point [ceil(N/8), G].
struct MarlinZerosArgs {
  int source = 0;  // as MarlinRepackArgs::source
  int zero_offset = 1;
  uint64_t groups = 0, n = 0;
  const uint32_t* zeros = nullptr;
  uint32_t* out = nullptr;
  int* bad = nullptr;  // device int, set to 1 when a zero exceeds 15 (GPTQ v1 stored 0xF)
};

class MarlinRepackKernel : public KernelErrorState {
 public:
  // K % 16, N % 64, kt0 < kt1 <= K/16, sizes below 2^31 words.
  static Int4Status can_implement(const MarlinRepackArgs& a);
  static Int4Status can_implement(const MarlinScalesArgs& a);
  static Int4Status can_implement(const MarlinZerosArgs& a);
  Int4Status run(const MarlinRepackArgs& a, cudaStream_t stream);
  Int4Status run(const MarlinScalesArgs& a, cudaStream_t stream);
  Int4Status run(const MarlinZerosArgs& a, cudaStream_t stream);
};

}  // namespace ckpt::cuda
