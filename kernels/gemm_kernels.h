// Element-wise kernels of the validation warm-up (gemm_kernels.cu): the activations of
// lib/validate/activations.h in each GEMM input dtype with their float64 values, weights
// dequantized (w = q * scale, per tensor / channel / block) to float64 for the reference or to
// the activation dtype for the dequantize + GEMM path, and the comparison of a GEMM result with
// the reference. C-style so that C++20 host code calls them.
#pragma once

#include <cuda_runtime.h>
#include <cstdint>

namespace ckpt::cuda {

enum class Elem : int { kF32 = 0, kF16 = 1, kBF16 = 2, kE4M3 = 3 };
enum class ScaleKind : int { kNone = 0, kTensor = 1, kChannel = 2, kBlock = 3, kInt4 = 4 };

struct DequantArgs {
  const void* weight;   // [n, k] row-major, any alignment of its element size
  Elem weight_type;
  uint64_t n, k;
  const void* scale;    // ScaleKind::kNone: unused
  Elem scale_type;      // kF32, kF16 or kBF16
  ScaleKind scale_kind;
  uint64_t block_n, block_k;
  // ScaleKind::kInt4: `weight` holds the packed codes of format `int4_format` (ops/int4_math.h
  // Int4FormatId: GPTQ, AWQ or compressed-tensors layout), `scale` the group scales [G, N] or
  // [N, G], `zeros` the packed zero points (null: 8; GPTQ adds `int4_zero_offset`), `g_idx` the
  // group of each input (null: k / group). w = (q - z) * scale as ops::int4_decode. Words are
  // read byte by byte: a tensor inside a file buffer need not be 4-byte aligned.
  int int4_format;
  int int4_zero_offset;
  const void* zeros;
  const void* g_idx;
  uint64_t group, groups;
};

// Activations rows x k stored as `type` into `out` and their exact float64 values into `ref`.
// kE4M3 stores e4m3(x / kFp8ActivationScale) and ref holds the decoded value times that scale.
cudaError_t make_activations(uint64_t rows, uint64_t k, Elem type, void* out, double* ref, cudaStream_t stream);
// The dequantized weight [n, k] as float64 (the reference operand).
cudaError_t dequantize_f64(const DequantArgs& a, double* out, cudaStream_t stream);
// The dequantized weight [n, k] rounded to `type` (kF16 or kBF16): the dequantize + GEMM path.
cudaError_t dequantize_to(const DequantArgs& a, Elem type, void* out, cudaStream_t stream);
// A per-tensor scale (any float type) as one float32 at `out` (cuBLASLt's scale pointer).
cudaError_t scale_to_f32(const void* scale, Elem type, float* out, cudaStream_t stream);
// Folds |y - ref| and |ref| maxima and the NaN/Inf count of rows x n outputs y (type kF32, kF16
// or kBF16; row stride ld_y elements) against ref (row stride ld_ref) into stats[0..2]:
// bit patterns of max |err| and max |ref| as doubles, and the count. stats starts zeroed.
cudaError_t compare_outputs(const void* y, Elem type, uint64_t ld_y, const double* ref, uint64_t ld_ref,
                            uint64_t rows, uint64_t n, unsigned long long* stats, cudaStream_t stream);

}  // namespace ckpt::cuda
