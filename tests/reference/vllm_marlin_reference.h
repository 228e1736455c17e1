// An independent, plain re-implementation of vLLM's own Marlin test reference, written from
// vllm/model_executor/layers/quantization/utils/marlin_utils_test.py (get_weight_perm,
// marlin_permute_weights, marlin_weights), marlin_utils.py (get_scale_perms,
// marlin_permute_scales, marlin_zero_points, awq_to_marlin_zero_points) and quant_utils.py
// (pack_rows / gptq_pack, pack_cols, unpack_cols, awq_pack, sort_weights): the same array
// reshapes and gathers, step by step, with none of lib/ops/marlin_layout's closed form. vLLM's
// test_gptq_marlin_repack / test_awq_marlin_repack assert the repack kernels equal these.
// Matrices are row-major std::vector<int64_t> (numpy's int arrays).
#pragma once

#include <cstdint>
#include <vector>

namespace ckpt::test::vllm {

using Mat = std::vector<int64_t>;  // row-major

// get_weight_perm(num_bits = 4): 1024 indices.
std::vector<int64_t> get_weight_perm();
// marlin_weights(q_w [K, N], K, N, 4, perm): the Marlin qweight [K/16, 2N] as uint32 words.
std::vector<uint32_t> marlin_weights(const Mat& q_w, int64_t size_k, int64_t size_n, const std::vector<int64_t>& perm);
// get_scale_perms(): (scale_perm of 64, scale_perm_single of 32).
void get_scale_perms(std::vector<int64_t>& scale_perm, std::vector<int64_t>& scale_perm_single);
// marlin_permute_scales(s [G, N], size_k, size_n, group_size) on any element type (as int64).
Mat marlin_permute_scales(const Mat& s, int64_t size_k, int64_t size_n, int64_t group_size);
// marlin_zero_points(zp [G, N], size_k = G, size_n, 4): [G, N/8] words.
std::vector<uint32_t> marlin_zero_points(const Mat& zp, int64_t size_k, int64_t size_n);
// awq_to_marlin_zero_points(q_zp_packed [G, N/8], G, N, 4).
std::vector<uint32_t> awq_to_marlin_zero_points(const std::vector<uint32_t>& q_zp_packed, int64_t size_k,
                                                int64_t size_n);
// pack_rows (gptq_pack): [K, N] -> [K/8, N]; pack_cols: [K, N] -> [K, N/8]; unpack_cols inverse.
std::vector<uint32_t> gptq_pack(const Mat& q_w, int64_t size_k, int64_t size_n);
std::vector<uint32_t> pack_cols(const Mat& q_w, int64_t size_k, int64_t size_n);
Mat unpack_cols(const std::vector<uint32_t>& packed, int64_t size_k, int64_t size_n);
// awq_pack: the [0,2,4,6,1,3,5,7] interleave along N, then pack_cols.
std::vector<uint32_t> awq_pack(const Mat& q_w, int64_t size_k, int64_t size_n);
// sort_weights(q_w, g_idx) with a stable argsort (what torch's CUDA sort gave; see
// lib/ops/marlin_layout.h): sorts q_w's rows and g_idx, returns the sort indices.
std::vector<int64_t> sort_weights(Mat& q_w, std::vector<int64_t>& g_idx, int64_t size_n);

}  // namespace ckpt::test::vllm
