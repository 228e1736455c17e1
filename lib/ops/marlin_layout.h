// vLLM's Marlin layout as plain CPU functions, and their inverses (issue 14): what
// gptq_marlin_repack / awq_marlin_repack (vllm csrc/quantization/gptq_marlin/*_repack.cu),
// marlin_permute_scales, marlin_zero_points and marlin_sort_g_idx
// (vllm/model_executor/layers/quantization/utils/marlin_utils.py) leave in GPU memory after
// process_weights_after_loading, byte for byte.
//
// Codes Q[k][n] (k < K input, n < N output, 4 bits each) are regrouped in tiles of 16 (K) x 64 (N).
// Marlin qweight B is I32 [K/16, 2N]; for every (k, n):
//   kt = k / 16, kr = k % 16, nt = n / 64, nr = n % 64
//   warp = nr / 16, blk = (nr % 16) / 8, col = nr % 8, hi = kr / 8, lo = kr % 8
//   th   = 4 col + lo / 2                        (the mma thread that holds the value)
//   src  = 4 blk + lo % 2 + 2 hi                 (its place in the thread's 8-value vector)
//   word = 128 nt + 4 th + warp                  (column of row kt of B)
//   B[kt][word] nibble kMarlinNibble[src] = Q[k][n]
// (kMarlinNibble = the inverse of FasterTransformer's [0,2,4,6,1,3,5,7] interleave, so that one
// lop3 turns nibble pairs (0,4), (1,5)... into two fp16 values; IST-DASLab/marlin dequant()).
// Equivalently: in every tile, B's word for (th, warp) takes byte th % 4 of the GPTQ words
// (rows 2kt and 2kt+1) of columns 64nt + 16warp + th/4 and that + 8, low nibbles into nibbles
// 0..3 and high nibbles into 4..7.
//
// Scales S [G, N] (any 2- or 4-byte dtype, moved as bytes) are permuted within each row:
//   grouped (group_size != -1 and group_size < K): chunks of 64, out[64c + 8i + j] = in[64c + i + 8j]
//   channelwise (otherwise):                       chunks of 32, out[32c + 8i + t] = in[32c + 2i + off[t]],
//                                                  off = [0,1,8,9,16,17,24,25]
// Zero points z [G, N] (0..15; uint4 with runtime zeros: AWQ, and GPTQ/compressed-tensors asym)
// take the grouped permutation in chunks of 64 (whatever the group size), then the
// [0,2,4,6,1,3,5,7] interleave in chunks of 8, packed 8 per word along N (value i in nibble i):
// I32 [G, N/8]. Symmetric GPTQ has none (vLLM passes an empty tensor; type uint4b8).
// Act-order: perm = argsort(g_idx), the codes' rows taken in that order (Q'[k] = Q[perm[k]]),
// g_idx stored sorted and perm stored as g_idx_sort_indices; scales stay in group order.
// vLLM calls torch.argsort(g_idx) without stable=True; ties (every k of one group) could then come
// out in any order, which changes B's bits but not the product. We sort stably (ties by
// ascending k), which is what torch's CUDA sort does for every K Marlin takes: its unstable
// bitonic path is used only for sort sizes <= 32; 33..128 use a warp merge sort and larger
// sizes radix sorts, both stable (pytorch/pytorch aten/src/ATen/native/cuda/Sort.cu
// sortKeyValueInplace, and the segmented radix sort beyond it); an H200 probe gave the stable
// order for K = 256 to 14336, while torch's CPU argsort did not keep ties in order, so a
// repack on the CPU in vLLM (not a path it takes) could differ.
//
// Constraints of the repack (TORCH_CHECKs of gptq_marlin_repack): K % 16 == 0, N % 64 == 0. The
// GEMM additionally needs K % 128 and K % group per TP rank (not checked here).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ckpt::ops {

inline constexpr uint64_t kMarlinTileK = 16;
inline constexpr uint64_t kMarlinTileN = 64;
// Nibble of B's word that holds position `src` of the thread's vector.
inline constexpr std::array<int, 8> kMarlinNibble = {0, 4, 1, 5, 2, 6, 3, 7};

// Why the Marlin repack cannot take a [n, k] weight ("" when it can): K % 16, N % 64.
std::string marlin_shape_problem(uint64_t n, uint64_t k);
// Why vLLM's Marlin layer (and the runtime's GEMM) cannot take it ("" when it can): the repack's
// rules, K % 128 (GPTQ_MARLIN_MIN_THREAD_K) and a group size in MARLIN_SUPPORTED_GROUP_SIZES
// (-1, 32, 64, 128; marlin_utils.verify_marlin_supports_shape).
std::string marlin_kernel_shape_problem(uint64_t n, uint64_t k, int64_t group_size);

// Where the 4-bit codes come from.
enum class MarlinSource : uint8_t {
  kGptq,               // qweight [K/8, N], K-packed (also the layout act-order gathers produce)
  kAwq,                // qweight [K, N/8], N-packed with the AWQ interleave
  kCompressedTensors,  // weight_packed [N, K/8], K-packed (= GPTQ's qweight transposed)
};

// Marlin qweight rows [kt0, kt1) (2N words each, written to out[(kt - kt0) * 2N + w]) from the
// source words those rows need, `src` pointing at:
//   kGptq: qweight row 2 kt0 (rows src_stride words apart, N words used per row);
//   kAwq:  qweight row 16 kt0 (rows src_stride apart, N/8 words used);
//   kCompressedTensors: weight_packed[0][2 kt0] (rows src_stride apart, all N rows).
void marlin_repack_reference(MarlinSource source, const uint32_t* src, uint64_t src_stride, uint64_t n, uint64_t k,
                             uint64_t kt0, uint64_t kt1, uint32_t* out);
// The same bytes through the fastest loops this CPU has.
void marlin_repack(MarlinSource source, const uint32_t* src, uint64_t src_stride, uint64_t n, uint64_t k,
                   uint64_t kt0, uint64_t kt1, uint32_t* out);
// The inverse: source-layout words of Marlin rows [kt0, kt1) (`marlin` pointing at row kt0, rows
// `marlin_stride` words apart: 2n for a whole array, more for a column stripe of a wider one),
// written where marlin_repack would have read them (`dst`, dst_stride as src/src_stride above).
// The reference places one nibble at a time by the closed form; marlin_unpack works on words.
void marlin_unpack_reference(MarlinSource source, const uint32_t* marlin, uint64_t n, uint64_t k, uint64_t kt0,
                             uint64_t kt1, uint32_t* dst, uint64_t dst_stride);
void marlin_unpack(MarlinSource source, const uint32_t* marlin, uint64_t marlin_stride, uint64_t n, uint64_t k,
                   uint64_t kt0, uint64_t kt1, uint32_t* dst, uint64_t dst_stride);

// Act-order. vLLM's marlin_sort_g_idx with a stable sort: perm = stable argsort(g_idx) and
// sorted[k] = g_idx[perm[k]]. Returns false (writing nothing) when a value lies outside
// [0, groups).
bool marlin_sort_g_idx(const int32_t* g_idx, uint64_t k, uint64_t groups, int32_t* sorted, int32_t* perm);
// The gather gptq_marlin_repack does with `perm`: GPTQ-layout words (K-packed [K/8, N]) of the
// sorted rows [k0, k1) (multiples of 8): out row (k - k0) / 8 nibble k % 8 of column n =
// code (perm[k], n) of the whole source array (`src`: kGptq qweight or kCompressedTensors
// weight_packed, src_stride as above; kAwq is not an act-order format).
void marlin_gather_sorted_k(MarlinSource source, const uint32_t* src, uint64_t src_stride, uint64_t n, uint64_t k,
                            const int32_t* perm, uint64_t k0, uint64_t k1, uint32_t* out, uint64_t out_stride);
// Its inverse for whole tensors: the source array (layout of `source`) from sorted GPTQ-layout
// words and perm.
void marlin_scatter_sorted_k(MarlinSource source, const uint32_t* sorted, uint64_t sorted_stride, uint64_t n,
                             uint64_t k, const int32_t* perm, uint32_t* dst, uint64_t dst_stride);

// Scales [groups, n] of `elem_bytes`-byte elements, rows [g0, g1) (pointers at row g0): vLLM's
// marlin_permute_scales(s, size_k = k, size_n = n, group_size) and its inverse.
void marlin_permute_scales(const uint8_t* in, size_t elem_bytes, uint64_t n, uint64_t k, int64_t group_size,
                           uint64_t g0, uint64_t g1, uint8_t* out);
void marlin_unpermute_scales(const uint8_t* in, size_t elem_bytes, uint64_t n, uint64_t k, int64_t group_size,
                             uint64_t g0, uint64_t g1, uint8_t* out);
// vLLM's marlin_permute_bias: the channelwise permutation of an [n] vector.
void marlin_permute_bias(const uint8_t* in, size_t elem_bytes, uint64_t n, uint8_t* out);
void marlin_unpermute_bias(const uint8_t* in, size_t elem_bytes, uint64_t n, uint8_t* out);

// Zero points: z [groups, n] (row-major) -> I32 [groups, n/8] (vLLM's marlin_zero_points), and
// back. False (nothing meaningful written) when a zero exceeds 15: Marlin's uint4 zero points
// cannot hold the 16 that GPTQ v1 readers make of a stored 0xF.
bool marlin_pack_zero_points(const uint8_t* z, uint64_t groups, uint64_t n, uint32_t* out);
void marlin_unpack_zero_points(const uint32_t* zp, uint64_t groups, uint64_t n, uint8_t* z);
// The same from a format's stored zero array: GPTQ qzeros [G, N/8] (zero = stored + zero_offset,
// 1 for v1), AWQ qzeros [G, N/8], compressed-tensors weight_zero_point [ceil(N/8), G]. False when
// a zero exceeds 15 (a v1 0xF).
bool marlin_zero_points_from(MarlinSource source, int zero_offset, const uint32_t* zeros, uint64_t groups, uint64_t n,
                             uint32_t* out);

}  // namespace ckpt::ops
