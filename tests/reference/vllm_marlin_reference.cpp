#include "vllm_marlin_reference.h"

#include <algorithm>
#include <numeric>

namespace ckpt::test::vllm {

namespace {

// x.reshape((-1, len(idx)))[:, idx].ravel()
template <class T>
std::vector<T> gather_chunks(const std::vector<T>& x, const std::vector<int64_t>& idx) {
  std::vector<T> out(x.size());
  const size_t w = idx.size();
  for (size_t r = 0; r < x.size() / w; ++r)
    for (size_t c = 0; c < w; ++c) out[r * w + c] = x[r * w + static_cast<size_t>(idx[c])];
  return out;
}

const std::vector<int64_t> kInterleave = {0, 2, 4, 6, 1, 3, 5, 7};

}  // namespace

std::vector<int64_t> get_weight_perm() {
  std::vector<int64_t> perm_list;
  for (int64_t i = 0; i < 32; ++i) {
    std::vector<int64_t> perm1;
    const int64_t col = i / 4;
    for (int64_t block : {0, 1})
      for (int64_t row : {2 * (i % 4), 2 * (i % 4) + 1, 2 * (i % 4 + 4), 2 * (i % 4 + 4) + 1})
        perm1.push_back(16 * row + col + 8 * block);
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t p : perm1) perm_list.push_back(p + 256 * j);
  }
  return gather_chunks(perm_list, kInterleave);
}

std::vector<uint32_t> marlin_weights(const Mat& q_w, int64_t size_k, int64_t size_n, const std::vector<int64_t>& perm) {
  const int64_t tile = 16;
  // reshape (K/16, 16, N/16, 16), permute (0, 2, 1, 3), reshape (K/16, N*16)
  Mat t(q_w.size());
  for (int64_t a = 0; a < size_k / tile; ++a)
    for (int64_t b = 0; b < tile; ++b)
      for (int64_t c = 0; c < size_n / tile; ++c)
        for (int64_t d = 0; d < tile; ++d)
          t[((a * (size_n / tile) + c) * tile + b) * tile + d] = q_w[(a * tile + b) * size_n + c * tile + d];
  // reshape (-1, perm.numel())[:, perm]
  t = gather_chunks(t, perm);
  // pack: q_packed |= q_w[:, i::8] << 4 i
  const int64_t cols = size_n * tile;
  std::vector<uint32_t> packed(static_cast<size_t>(size_k / tile * cols / 8), 0);
  for (int64_t r = 0; r < size_k / tile; ++r)
    for (int64_t c = 0; c < cols / 8; ++c)
      for (int64_t i = 0; i < 8; ++i)
        packed[r * (cols / 8) + c] |= static_cast<uint32_t>(t[r * cols + 8 * c + i]) << (4 * i);
  return packed;
}

void get_scale_perms(std::vector<int64_t>& scale_perm, std::vector<int64_t>& scale_perm_single) {
  scale_perm.clear();
  scale_perm_single.clear();
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) scale_perm.push_back(i + 8 * j);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j : {0, 1, 8, 9, 16, 17, 24, 25}) scale_perm_single.push_back(2 * i + j);
}

Mat marlin_permute_scales(const Mat& s, int64_t size_k, int64_t size_n, int64_t group_size) {
  std::vector<int64_t> perm, single;
  get_scale_perms(perm, single);
  if (group_size < size_k && group_size != -1) return gather_chunks(s, perm);
  return gather_chunks(s, single);
}

std::vector<uint32_t> marlin_zero_points(const Mat& zp, int64_t size_k, int64_t size_n) {
  std::vector<int64_t> perm, single;
  get_scale_perms(perm, single);
  Mat z = gather_chunks(zp, perm);
  z = gather_chunks(z, kInterleave);
  return pack_cols(z, size_k, size_n);
}

std::vector<uint32_t> awq_to_marlin_zero_points(const std::vector<uint32_t>& q_zp_packed, int64_t size_k,
                                                int64_t size_n) {
  Mat q_zp = unpack_cols(q_zp_packed, size_k, size_n);
  // undo_interleave = argsort([0, 2, 4, 6, 1, 3, 5, 7])
  std::vector<int64_t> undo(8);
  std::iota(undo.begin(), undo.end(), 0);
  std::sort(undo.begin(), undo.end(), [](int64_t a, int64_t b) { return kInterleave[a] < kInterleave[b]; });
  q_zp = gather_chunks(q_zp, undo);
  return marlin_zero_points(q_zp, size_k, size_n);
}

std::vector<uint32_t> gptq_pack(const Mat& q_w, int64_t size_k, int64_t size_n) {
  std::vector<uint32_t> out(static_cast<size_t>(size_k / 8 * size_n), 0);
  for (int64_t i = 0; i < 8; ++i)  // q_res |= q_w[i::8, :] << 4 i
    for (int64_t r = 0; r < size_k / 8; ++r)
      for (int64_t c = 0; c < size_n; ++c)
        out[r * size_n + c] |= static_cast<uint32_t>(q_w[(8 * r + i) * size_n + c]) << (4 * i);
  return out;
}

std::vector<uint32_t> pack_cols(const Mat& q_w, int64_t size_k, int64_t size_n) {
  std::vector<uint32_t> out(static_cast<size_t>(size_k * (size_n / 8)), 0);
  for (int64_t i = 0; i < 8; ++i)  // q_res |= q_w[:, i::8] << 4 i
    for (int64_t r = 0; r < size_k; ++r)
      for (int64_t c = 0; c < size_n / 8; ++c)
        out[r * (size_n / 8) + c] |= static_cast<uint32_t>(q_w[r * size_n + 8 * c + i]) << (4 * i);
  return out;
}

Mat unpack_cols(const std::vector<uint32_t>& packed, int64_t size_k, int64_t size_n) {
  Mat out(static_cast<size_t>(size_k * size_n));
  std::vector<uint32_t> p = packed;
  for (int64_t i = 0; i < 8; ++i) {  // vals = p & mask; p >>= 4; q_res[:, i::8] = vals
    for (int64_t r = 0; r < size_k; ++r)
      for (int64_t c = 0; c < size_n / 8; ++c) out[r * size_n + 8 * c + i] = p[r * (size_n / 8) + c] & 15u;
    for (auto& v : p) v >>= 4;
  }
  return out;
}

std::vector<uint32_t> awq_pack(const Mat& q_w, int64_t size_k, int64_t size_n) {
  return pack_cols(gather_chunks(q_w, kInterleave), size_k, size_n);
}

std::vector<int64_t> sort_weights(Mat& q_w, std::vector<int64_t>& g_idx, int64_t size_n) {
  std::vector<int64_t> idx(g_idx.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return g_idx[a] < g_idx[b]; });
  Mat q(q_w.size());
  std::vector<int64_t> g(g_idx.size());
  for (size_t r = 0; r < idx.size(); ++r) {
    g[r] = g_idx[idx[r]];
    std::copy(q_w.begin() + idx[r] * size_n, q_w.begin() + (idx[r] + 1) * size_n, q.begin() + static_cast<int64_t>(r) * size_n);
  }
  q_w = q;
  g_idx = g;
  return idx;
}

}  // namespace ckpt::test::vllm
