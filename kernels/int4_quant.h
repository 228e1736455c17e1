// The CUDA twin of INT4 RTN quantization (lib/ops/int4_quant.h): a stripe of rows of a weight on
// the GPU becomes the format's stored arrays (GPTQ qweight/qzeros/scales/g_idx, AWQ
// qweight/qzeros/scales, compressed-tensors weight_packed/weight_scale/weight_zero_point), the
// same bytes as the CPU reference (tests/gpu/test_int4_quant_gpu.cpp). Host side in the CUTLASS
// manner: can_implement -> get_workspace_size -> run -> read_result, every CUDA call checked and
// returned. Plain C++17 types so nvcc compiles it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace ckpt::cuda {

enum class Int4Status : int {
  kSuccess = 0,
  kInvalidProblem,   // a shape or option this kernel does not take (the CPU path does)
  kWorkspaceNull,    // run without the workspace get_workspace_size asked for
  kCudaError,        // a CUDA call failed: see Int4QuantKernel::last_error()
};
const char* int4_status_name(Int4Status s);

// What every kernel class here keeps of its last failure: run() returns kCudaError through
// fail(), and last_error() says which CUDA error it was.
class KernelErrorState {
 public:
  cudaError_t last_error() const { return error_; }

 protected:
  Int4Status fail(cudaError_t e) {
    error_ = e;
    return Int4Status::kCudaError;
  }

 private:
  cudaError_t error_ = cudaSuccess;
};

// The CTA count of a persistent grid for `kernel` (`threads` per CTA, `smem_bytes` of dynamic
// shared memory) that has `work` CTAs' worth of tiles: as many CTAs as the current device keeps
// resident at once, at most `work`, at most `max_ctas` when that is nonzero, at least 1.
cudaError_t persistent_grid(const void* kernel, int threads, uint64_t work, uint32_t max_ctas, unsigned* grid,
                            size_t smem_bytes = 0);

// One run: rows [row0, row0 + rows) of an [n, k] weight, `in` holding exactly those rows (device,
// row-major, row stride k elements). Outputs are whole-tensor device arrays of the format's shapes
// (lib/ops/int4_quant.h int4_shapes); the run writes the stripe's part of each.
struct Int4QuantArgs {
  int format = 0;      // ops::Int4FormatId: 0 GPTQ, 1 AWQ, 2 compressed-tensors
  // The layout of the output arrays, an ops::Int4FormatId; -1: the format's own. The format still
  // decides the numbers (its all-zero groups' scale and zero). An engine that keeps K-packed words
  // and parameters, whatever the format (ops/int4_producers.h), asks for 2: weights [N, K/8],
  // scales [N, G], zeros [ceil(N/8), G] with the zero itself in each nibble (no GPTQ offset).
  int layout = -1;
  int in_type = 0;     // 0 BF16, 1 F16, 2 F32
  int scale_type = 0;  // ops::Int4ScaleType: 0 F16, 1 BF16, 2 F32
  bool symmetric = true;
  int zero_offset = 1;  // GPTQ qzeros: 1 = v1, 0 = v2
  uint64_t n = 0, k = 0;
  uint64_t group = 0;  // elements per group (k for group_size -1)
  uint64_t row0 = 0, rows = 0;
  const void* in = nullptr;
  uint32_t* weights = nullptr;
  void* scales = nullptr;
  uint32_t* zeros = nullptr;   // null where the format stores none (compressed-tensors symmetric)
  int32_t* g_idx = nullptr;    // GPTQ; null: not written
  bool stats = false;          // accumulate the error report
  // At most this many CTAs (0: as many as the GPU keeps resident). Tests set a few so that each
  // CTA walks the persistent loop over many tiles.
  uint32_t max_ctas = 0;
};

// What a run found: the first problem (kind 0 none, 1 NaN/Inf element, 2 scale overflow) at
// whole-weight (row, col) in row-major order — ops::Int4Issue's fields — and the error report.
struct Int4QuantResult {
  int issue = 0;
  uint64_t row = 0, col = 0;
  double sum_sq_err = 0, sum_sq = 0, max_abs_err = 0;
};

class Int4QuantKernel : public KernelErrorState {
 public:
  // kSuccess when this kernel takes the problem: K % 8 == 0, a group size that is a multiple of 8,
  // stripes starting on a multiple of 8 rows, row counts and sizes below 2^31.
  static Int4Status can_implement(const Int4QuantArgs& a);
  // Device bytes the run needs (group parameters when groups are wider than a tile, error
  // partials, the issue word).
  static size_t get_workspace_size(const Int4QuantArgs& a);
  // Enqueues the kernels on `stream`.
  Int4Status run(const Int4QuantArgs& a, void* workspace, cudaStream_t stream);
  // The leading bytes of the workspace that hold a run's result (the issue word and, with stats,
  // the error partials): a pipeline copies them back with the outputs, asynchronously, and
  // decodes the copy with result_from once the stream has passed the run.
  static size_t result_bytes(const Int4QuantArgs& a);
  static Int4QuantResult result_from(const Int4QuantArgs& a, const void* host_copy);
  // After the stream has finished the run: copies the result back and decodes it (synchronous).
  Int4Status read_result(const Int4QuantArgs& a, const void* workspace, cudaStream_t stream, Int4QuantResult* out);
};

}  // namespace ckpt::cuda
