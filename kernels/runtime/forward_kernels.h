// The element-wise and attention kernels of the CUDA decoder forward (gpu_forward.cpp), in float32
// with the CPU reference's formulas (lib/model/cpu_forward.cpp): RMSNorm, rotary embedding from a
// cos/sin table, causal GQA attention with an optional sliding window over a KV cache, SiLU(gate)
// * up, MoE row gather/scatter, and small helpers (the Linear and embedding kernels are in
// linear_kernels.h). The position of the step's first token is read from device memory, so a
// captured decode step replays at any position. C-style so that C++20 host code calls them.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ckpt::cuda {

// out[r][:] = w * x[r][:] / sqrt(mean(x[r]^2) + eps) for `rows` rows of `width` (x may alias out).
cudaError_t rms_norm_rows(const float* x, uint64_t rows, uint64_t width, const float* w, float eps, float* out,
                          cudaStream_t stream);
struct AttentionArgs {
  const float* q;        // [batch * tokens][q_stride], heads from column q_col
  uint64_t q_stride, q_col;
  float* k_cache;        // [batch][capacity][kv_heads][head_dim]
  float* v_cache;
  const float* k_new;    // [batch * tokens][kv_stride] from column k_col / v_col: written to the cache
  const float* v_new;
  uint64_t kv_stride, k_col, v_col;
  float* out;            // [batch * tokens][q_heads * head_dim]
  const uint64_t* start;  // device memory: position of token 0 of the step
  uint64_t batch, tokens, capacity;
  uint64_t q_heads, kv_heads, head_dim;
  uint64_t group;          // global query heads per KV head
  uint64_t first_q_head;   // global index of local query head 0
  uint64_t first_kv_head;  // global index of local KV head 0
  uint64_t window;         // 0: full causal
  float scale;
  // Rotary embedding: cos / sin [positions][half] with half = rotary_dim / 2; dimensions d and
  // d + half (d < half) of each query and key head rotate, those from 2 * half on stay.
  const float* cos;
  const float* sin;
  uint64_t half;
};
// Writes the new keys (rotated) and values at positions [*start, *start + tokens), then
// out = softmax(rot(q) k^T * scale, causal / window mask) v per sequence and query head; row r
// (sequence r / tokens, token r % tokens) sits at position *start + r % tokens. The rotation is
// applied where the heads are read (the key's into the cache, the query's into the attention
// kernel's shared memory): q and k_new stay as they are, and the step has two kernels here, not
// four.
cudaError_t attention(const AttentionArgs& a, cudaStream_t stream);
// out[r][j] = silu(gate[r][gate_col + j]) * up[r][up_col + j] for j < n (row strides given).
cudaError_t silu_mul(const float* gate, uint64_t gate_stride, uint64_t gate_col, const float* up, uint64_t up_stride,
                     uint64_t up_col, uint64_t rows, uint64_t n, float* out, cudaStream_t stream);
// y[r][j] += b[j].
cudaError_t add_bias(float* y, const float* b, uint64_t rows, uint64_t n, cudaStream_t stream);
// y[i] += x[i].
cudaError_t add_into(float* y, const float* x, uint64_t n, cudaStream_t stream);
// dst[r][dst_col + j] = src[r][src_col + j] for j < n.
cudaError_t copy_columns(const float* src, uint64_t src_stride, uint64_t src_col, float* dst, uint64_t dst_stride,
                         uint64_t dst_col, uint64_t rows, uint64_t n, cudaStream_t stream);

// MoE: dst[s][:] = src[idx[s]][:] for n rows of width w.
cudaError_t gather_rows(const float* src, const int64_t* idx, uint64_t n, uint64_t w, float* dst, cudaStream_t stream);
// MoE: out[idx[s]][:] += weight[s] * y[s][:] (the indices of one call are distinct).
cudaError_t scatter_add_weighted(const float* y, const int64_t* idx, const float* weight, uint64_t n, uint64_t w,
                                 float* out, cudaStream_t stream);
// Qwen2-MoE shared expert: y[r][:] *= sigmoid(gate[r]).
cudaError_t scale_rows_sigmoid(float* y, const float* gate, uint64_t rows, uint64_t w, cudaStream_t stream);

}  // namespace ckpt::cuda
