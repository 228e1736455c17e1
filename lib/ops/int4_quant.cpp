#include "ops/int4_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/error.h"
#include "ops/float_convert.h"
#include "ops/int4_quant_detail.h"

namespace ckpt::ops {

const char* int4_format_name(Int4Format f) {
  switch (f) {
    case Int4Format::kGptq: return "gptq";
    case Int4Format::kAwq: return "awq";
    case Int4Format::kCompressedTensors: return "compressed-tensors";
  }
  return "?";
}

namespace detail {

int int4_scale_type(DType t) {
  switch (t) {
    case DType::F16: return kInt4ScaleF16;
    case DType::BF16: return kInt4ScaleBF16;
    case DType::F32: return kInt4ScaleF32;
    default: throw std::logic_error("int4: unsupported scale dtype");
  }
}

int int4_format_id(Int4Format f) {
  switch (f) {
    case Int4Format::kGptq: return kInt4Gptq;
    case Int4Format::kAwq: return kInt4Awq;
    case Int4Format::kCompressedTensors: return kInt4Ct;
  }
  throw std::logic_error("int4: unknown format");
}

void int4_check_block(const Int4Geometry& geo, const Int4Source& src, uint64_t kb, uint64_t ke) {
  const bool ok = geo.group > 0 && src.col0 % geo.group == 0 && src.cols % geo.group == 0 &&
                  src.col0 + src.cols <= geo.k && src.row0 + src.rows <= geo.n && kb % 8 == 0 && kb >= src.col0 &&
                  ke <= src.col0 + src.cols && kb <= ke && (ke % 8 == 0 || ke == geo.k);
  if (!ok) throw std::logic_error("int4: block or column range not on group / word boundaries");
}

}  // namespace detail

using detail::int4_issue;

std::string int4_shape_problem(const Int4Scheme& s, uint64_t n, uint64_t k) {
  const std::string shape = "[" + std::to_string(n) + ", " + std::to_string(k) + "]";
  if (n == 0 || k == 0) return "an empty weight " + shape + " has nothing to quantize";
  if (s.group_size == 0 || s.group_size < -1) return "group size " + std::to_string(s.group_size) + " is not > 0 or -1";
  if (s.group_size > 0 && k % static_cast<uint64_t>(s.group_size) != 0)
    return "in_features " + std::to_string(k) + " of " + shape + " is not a multiple of the group size " +
           std::to_string(s.group_size);
  const bool n_packed = s.format != Int4Format::kCompressedTensors;  // qzeros (and AWQ qweight) pack 8 rows of W
  if (n_packed && n % 8 != 0)
    return "out_features " + std::to_string(n) + " of " + shape + " is not a multiple of 8 (" +
           int4_format_name(s.format) + " packs 8 output channels per int32)";
  if (s.format == Int4Format::kGptq && k % 8 != 0)
    return "in_features " + std::to_string(k) + " of " + shape + " is not a multiple of 8 (gptq packs 8 inputs per int32)";
  if (s.scale_dtype != DType::F16 && s.scale_dtype != DType::BF16 && s.scale_dtype != DType::F32)
    return std::string("scale dtype ") + std::string(dtype_name(s.scale_dtype)) + " is not F16, BF16 or F32";
  if (s.format != Int4Format::kCompressedTensors && s.scale_dtype != DType::F16)
    return std::string(int4_format_name(s.format)) + " stores F16 scales";
  return "";
}

Int4Geometry int4_geometry(const Int4Scheme& s, uint64_t n, uint64_t k) {
  Int4Geometry g;
  g.n = n;
  g.k = k;
  g.group = s.group_size > 0 ? static_cast<uint64_t>(s.group_size) : k;
  g.groups = g.group ? k / g.group : 0;
  return g;
}

Int4Shapes int4_shapes(const Int4Scheme& s, uint64_t n, uint64_t k) {
  const Int4Geometry g = int4_geometry(s, n, k);
  Int4Shapes out;
  switch (s.format) {
    case Int4Format::kGptq:
      out.weights = {k / 8, n};
      out.zeros = {g.groups, n / 8};
      out.scales = {g.groups, n};
      out.g_idx = {k};
      break;
    case Int4Format::kAwq:
      out.weights = {k, n / 8};
      out.zeros = {g.groups, n / 8};
      out.scales = {g.groups, n};
      break;
    case Int4Format::kCompressedTensors:
      out.weights = {n, (k + 7) / 8};
      if (!s.symmetric) out.zeros = {(n + 7) / 8, g.groups};
      out.scales = {n, g.groups};
      out.shape = {2};
      break;
  }
  return out;
}

void int4_fail(const Int4Issue& issue, const Int4Scheme& s, const std::string& file, const std::string& tensor) {
  char buf[256];
  if (issue.kind == Int4Issue::kNonFinite) {
    std::snprintf(buf, sizeof buf, "element [%llu, %llu] is %g; refusing to quantize a weight holding NaN or Inf",
                  static_cast<unsigned long long>(issue.row), static_cast<unsigned long long>(issue.col),
                  static_cast<double>(issue.value));
  } else {
    std::snprintf(buf, sizeof buf,
                  "the group at [%llu, %llu] spans %g, whose INT4 scale does not fit %s (values this large cannot be "
                  "quantized to INT4 with %s scales)",
                  static_cast<unsigned long long>(issue.row), static_cast<unsigned long long>(issue.col),
                  static_cast<double>(issue.value), std::string(dtype_name(s.scale_dtype)).c_str(),
                  std::string(dtype_name(s.scale_dtype)).c_str());
  }
  fail(Errc::kCheckFailed, file, tensor, buf);
}

namespace {

// One group's scan in float32: amax, lo = min(min x, 0), hi = max(max x, 0); the first
// non-finite element's column, or ~0.
struct GroupRange {
  float amax = 0, lo = 0, hi = 0;
  uint64_t bad = ~0ull;
  float bad_value = 0;
};

GroupRange scan_reference(const Int4Source& src, uint64_t r, uint64_t c0, uint64_t n) {
  GroupRange g;
  const uint8_t* row = src.data + r * src.stride * (dtype_bits(src.dtype) / 8);
  for (uint64_t c = c0; c < c0 + n; ++c) {
    const float x = load_as_f32(row, src.dtype, c - src.col0);
    if (!std::isfinite(x)) {
      g.bad = c;
      g.bad_value = x;
      return g;
    }
    g.amax = std::max(g.amax, std::fabs(x));
    g.lo = std::min(g.lo, x);
    g.hi = std::max(g.hi, x);
  }
  return g;
}

// The parameters of group j of block row r (whole-weight indices in the issue).
Int4Issue params_reference(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t r, uint64_t j,
                           Int4Params* p) {
  const uint64_t c0 = src.col0 + j * geo.group;
  const GroupRange g = scan_reference(src, r, c0, geo.group);
  if (g.bad != ~0ull) return int4_issue(Int4Issue::kNonFinite, src.row0 + r, g.bad, g.bad_value);
  if (!detail::int4_group_params(s, g.amax, g.lo, g.hi, p))
    return int4_issue(Int4Issue::kScaleOverflow, src.row0 + r, c0, s.symmetric ? g.amax : g.hi - g.lo);
  return {};
}

}  // namespace

Int4Issue int4_params_reference(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src,
                                Int4Params* params) {
  detail::int4_check_block(geo, src, src.col0, src.col0);
  const uint64_t ng = src.cols / geo.group;
  for (uint64_t r = 0; r < src.rows; ++r)
    for (uint64_t j = 0; j < ng; ++j)
      if (Int4Issue i = params_reference(s, geo, src, r, j, &params[r * ng + j])) return i;
  return {};
}

Int4Issue int4_quantize_reference(const Int4Scheme& s, const Int4Geometry& geo, const Int4Source& src, uint64_t kb,
                                  uint64_t ke, Int4Params* params, uint32_t* words, uint64_t words_stride,
                                  Fp8ErrorStats* stats) {
  detail::int4_check_block(geo, src, kb, ke);
  const uint64_t ng = src.cols / geo.group;
  const uint64_t nwords = (ke - kb + 7) / 8;
  const size_t esize = dtype_bits(src.dtype) / 8;
  for (uint64_t r = 0; r < src.rows; ++r) {
    uint32_t* out = words + r * words_stride;
    std::fill(out, out + nwords, 0u);
    const uint8_t* row = src.data + r * src.stride * esize;
    for (uint64_t j = 0; j < ng; ++j) {
      Int4Params& p = params[r * ng + j];
      if (Int4Issue i = params_reference(s, geo, src, r, j, &p)) return i;
      const uint64_t g0 = src.col0 + j * geo.group;
      for (uint64_t k = std::max(kb, g0); k < std::min(ke, g0 + geo.group); ++k) {
        const float x = load_as_f32(row, src.dtype, k - src.col0);
        const uint32_t q = int4_code(x, p.scale, p.zero);
        out[(k - kb) / 8] |= q << (4 * (k % 8));
        if (stats) {
          const float e = x - int4_dequant(q, p.zero, p.scale);
          stats->sum_sq_err += static_cast<double>(e) * e;
          stats->sum_sq += static_cast<double>(x) * x;
          stats->max_abs_err = std::max(stats->max_abs_err, static_cast<double>(std::fabs(e)));
        }
      }
    }
  }
  return {};
}

// ---- scales, zeros, g_idx ------------------------------------------------------------------

// GPTQ's and AWQ's [G, N] scales and zeros are the transpose of the parameters' [N, G]: their
// rows go in blocks of kParamBlock, group by group, so that the stores run in order along N while
// the block's parameters stay in L1 (row by row, each store hit another line of the output). The
// dtype and format are chosen once per call, not per element (an out-of-line store_scale per scale
// was a fifth of a GPTQ/AWQ command's non-quantize CPU).
namespace {

constexpr uint64_t kParamBlock = 64;

// put(at, r, j) for every element of the view: at = its index in the output array.
template <class Put>
void for_each_scale(const Int4Scheme& s, const Int4Geometry& geo, const Int4ParamsView& v, Put put) {
  if (s.format == Int4Format::kCompressedTensors) {  // [N, G]
    for (uint64_t r = 0; r < v.rows; ++r)
      for (uint64_t j = 0; j < v.ngroups; ++j) put((v.row0 + r) * geo.groups + v.g0 + j, r, j);
    return;
  }
  for (uint64_t r0 = 0; r0 < v.rows; r0 += kParamBlock)  // [G, N]
    for (uint64_t j = 0; j < v.ngroups; ++j)
      for (uint64_t r = r0; r < std::min(v.rows, r0 + kParamBlock); ++r) put((v.g0 + j) * geo.n + v.row0 + r, r, j);
}

// The zero-point words: word(r8, j) = OR over i of nibble(r8, i, j) << 4i, for the view's row
// groups r8 (multiples of 8) and groups j.
template <class Nibble>
void pack_zeros(const Int4Scheme& s, const Int4Geometry& geo, const Int4ParamsView& v, uint32_t* out, Nibble nibble) {
  const bool ct = s.format == Int4Format::kCompressedTensors;  // [ceil(N/8), G]: word rows in order
  const uint64_t block = ct ? 8 : kParamBlock;                  // GPTQ / AWQ [G, N/8]: blocks of rows
  for (uint64_t b0 = 0; b0 < v.rows; b0 += block)
    for (uint64_t j = 0; j < v.ngroups; ++j)
      for (uint64_t r8 = b0; r8 < std::min(v.rows, b0 + block); r8 += 8) {
        const uint64_t m = (v.row0 + r8) / 8, g = v.g0 + j;
        uint32_t w = 0;
        for (uint64_t i = 0; i < 8; ++i) w |= nibble(r8, i, j) << (4 * i);
        out[ct ? m * geo.groups + g : g * (geo.n / 8) + m] = w;
      }
}

}  // namespace

void int4_store_scales(const Int4Scheme& s, const Int4Geometry& geo, const Int4ParamsView& v, uint8_t* out) {
  auto scale = [&](uint64_t r, uint64_t j) { return v.p[r * v.stride + j].scale; };
  switch (s.scale_dtype) {
    case DType::F16:
      for_each_scale(s, geo, v, [&](uint64_t at, uint64_t r, uint64_t j) {
        const uint16_t h = f32_to_f16(scale(r, j));
        std::memcpy(out + 2 * at, &h, 2);
      });
      return;
    case DType::BF16:
      for_each_scale(s, geo, v, [&](uint64_t at, uint64_t r, uint64_t j) {
        const uint16_t h = f32_to_bf16(scale(r, j));
        std::memcpy(out + 2 * at, &h, 2);
      });
      return;
    default: {
      const size_t size = dtype_bits(s.scale_dtype) / 8;
      for_each_scale(s, geo, v, [&](uint64_t at, uint64_t r, uint64_t j) {
        store_scale(scale(r, j), s.scale_dtype, out + at * size);
      });
    }
  }
}

void int4_store_zeros(const Int4Scheme& s, const Int4Geometry& geo, const Int4ParamsView& v, uint32_t* out) {
  const bool whole = v.row0 % 8 == 0 && (v.rows % 8 == 0 || v.row0 + v.rows == geo.n);
  if (!whole) throw std::logic_error("int4: zeros are stored for whole words of 8 rows");
  auto zero = [&](uint64_t r, uint64_t j) { return static_cast<uint32_t>(v.p[r * v.stride + j].zero); };
  switch (s.format) {
    case Int4Format::kGptq: {  // nibble i = row 8m + i, minus the v1 offset
      const uint32_t off = static_cast<uint32_t>(s.gptq_zero_offset);
      pack_zeros(s, geo, v, out, [&](uint64_t r8, uint64_t i, uint64_t j) { return (zero(r8 + i, j) - off) & 15u; });
      return;
    }
    case Int4Format::kAwq:  // nibble i = row 8m + order[i]
      pack_zeros(s, geo, v, out, [&](uint64_t r8, uint64_t i, uint64_t j) {
        return zero(r8 + static_cast<uint64_t>(kAwqOrder[i]), j);
      });
      return;
    case Int4Format::kCompressedTensors:  // nibble i = row 8m + i; 0 past N
      pack_zeros(s, geo, v, out, [&](uint64_t r8, uint64_t i, uint64_t j) { return r8 + i < v.rows ? zero(r8 + i, j) : 0u; });
      return;
  }
}

void int4_store_g_idx(const Int4Geometry& geo, uint64_t k0, uint64_t k1, int32_t* out) {
  for (uint64_t k = k0; k < k1; ++k) out[k - k0] = static_cast<int32_t>(k / geo.group);
}

// ---- decoding ------------------------------------------------------------------------------

namespace {

// Zero point of row n, group g as the format's readers see it (GPTQ v1: stored + 1, unmasked).
uint32_t int4_zero_of(const Int4Scheme& s, const Int4Geometry& geo, const uint32_t* zeros, uint64_t n, uint64_t g) {
  if (!zeros) return 8;
  const Int4Nibble at = int4_zero_at(detail::int4_format_id(s.format), geo.n, geo.groups, n, g);
  const uint32_t z = (zeros[at.word] >> at.shift) & 15u;
  return s.format == Int4Format::kGptq ? z + static_cast<uint32_t>(s.gptq_zero_offset) : z;
}

float int4_scale_of(const Int4Scheme& s, const Int4Geometry& geo, const uint8_t* scales, uint64_t n, uint64_t g) {
  return load_as_f32(scales, s.scale_dtype, int4_scale_at(detail::int4_format_id(s.format), geo.n, geo.groups, n, g));
}

}  // namespace

void int4_unpack(const Int4Scheme& s, const Int4Geometry& geo, const Int4Stored& st, uint64_t n0, uint64_t n1,
                 uint8_t* codes, uint8_t* zeros, float* scales) {
  const uint64_t K = geo.k, G = geo.groups;
  const int f = detail::int4_format_id(s.format);
  for (uint64_t n = n0; n < n1; ++n) {
    uint8_t* c = codes + (n - n0) * K;
    for (uint64_t k = 0; k < K; ++k) {
      const Int4Nibble at = int4_code_at(f, geo.n, K, n, k);
      c[k] = static_cast<uint8_t>((st.weights[at.word] >> at.shift) & 15u);
    }
    for (uint64_t g = 0; g < G; ++g) {
      zeros[(n - n0) * G + g] = static_cast<uint8_t>(int4_zero_of(s, geo, st.zeros, n, g));
      scales[(n - n0) * G + g] = int4_scale_of(s, geo, st.scales, n, g);
    }
  }
}

Int4ArrayIssue int4_check_stored(const Int4Scheme& s, const Int4Geometry& geo, const Int4Stored& st, bool act_order) {
  const uint64_t K = geo.k, N = geo.n, G = geo.groups;
  auto issue = [](Int4ArrayIssue::Array a, uint64_t index, std::string rule) {
    return Int4ArrayIssue{a, index, std::move(rule)};
  };
  for (uint64_t n = 0; n < N; ++n)
    for (uint64_t g = 0; g < G; ++g) {
      const float v = int4_scale_of(s, geo, st.scales, n, g);
      if (!std::isfinite(v) || !(v > 0))
        return issue(Int4ArrayIssue::kScales, int4_scale_at(detail::int4_format_id(s.format), N, G, n, g),
                     "scale of row " + std::to_string(n) + ", group " + std::to_string(g) + " is " + std::to_string(v) +
                         " (a dequantization multiplier must be finite and > 0)");
    }
  // Zero points: symmetric GPTQ is read by vLLM's gptq_marlin as uint4b8 (qzeros ignored, zero 8)
  // while the exllama path and transformers read qzeros, so anything but 8 decodes two ways; a v1
  // stored nibble 0xF reads back as 16, outside every kernel's 4-bit range (vllm gptq_marlin.py,
  // AutoGPTQ qlinear_cuda_old.py).
  for (uint64_t g = 0; st.zeros && g < G; ++g)
    for (uint64_t n = 0; n < N; ++n) {
      const uint32_t z = int4_zero_of(s, geo, st.zeros, n, g);
      const uint64_t word = int4_zero_at(detail::int4_format_id(s.format), N, G, n, g).word;
      if (z > 15)
        return issue(Int4ArrayIssue::kZeros, word,
                     "zero point of row " + std::to_string(n) + ", group " + std::to_string(g) +
                         " reads back as 16 (stored nibble 0xF in checkpoint_format gptq, v1 adds 1 unmasked)");
      if (s.symmetric && z != 8)
        return issue(Int4ArrayIssue::kZeros, word,
                     "zero point of row " + std::to_string(n) + ", group " + std::to_string(g) + " is " +
                         std::to_string(z) + " in a symmetric checkpoint (vLLM's gptq_marlin assumes 8, other readers use it)");
    }
  // compressed-tensors pads the last word of a row (codes past K) and of a column of zero points
  // (rows past N) with zero nibbles (pack_to_int32); anything there is not the packing.
  if (s.format == Int4Format::kCompressedTensors) {
    const uint64_t words = (K + 7) / 8;
    if (st.weights && K % 8 != 0)
      for (uint64_t n = 0; n < N; ++n)
        if (st.weights[n * words + words - 1] >> (4 * (K % 8)))
          return issue(Int4ArrayIssue::kWeights, n * words + words - 1,
                       "row " + std::to_string(n) + " has non-zero nibbles past in_features " + std::to_string(K) +
                           " (the packing pads with zeros)");
    if (st.zeros && N % 8 != 0)
      for (uint64_t g = 0; g < G; ++g)
        if (st.zeros[(N / 8) * G + g] >> (4 * (N % 8)))
          return issue(Int4ArrayIssue::kZeros, (N / 8) * G + g,
                       "group " + std::to_string(g) + " has non-zero nibbles past out_features " + std::to_string(N) +
                           " (the packing pads with zeros)");
  }
  // g_idx: with act-order a group per input in [0, G). Without it vLLM drops g_idx and uses k / G,
  // so it must be a slice of the trivial k / G: g_idx[0] + k / G (a row-parallel TP rank keeps the
  // global group numbers of its slice, as vLLM's RowvLLMParameter loads it).
  for (uint64_t k = 0; st.g_idx && k < K; ++k) {
    const int32_t v = st.g_idx[k];
    if (act_order && (v < 0 || static_cast<uint64_t>(v) >= G))
      return issue(Int4ArrayIssue::kGIdx, k, "g_idx[" + std::to_string(k) + "] = " + std::to_string(v) +
                                                 " is outside [0, " + std::to_string(G) + ")");
    if (!act_order && static_cast<int64_t>(v) != static_cast<int64_t>(st.g_idx[0]) + static_cast<int64_t>(k / geo.group))
      return issue(Int4ArrayIssue::kGIdx, k,
                   "g_idx[" + std::to_string(k) + "] = " + std::to_string(v) +
                       " but without act-order (desc_act false) it must be g_idx[0] + k / " + std::to_string(geo.group) +
                       " = " + std::to_string(int64_t(st.g_idx[0]) + int64_t(k / geo.group)) +
                       " (vLLM ignores g_idx then and reads group k / " + std::to_string(geo.group) + ")");
  }
  return {};
}

bool int4_decode(const Int4Scheme& s, const Int4Geometry& geo, const Int4Stored& st, uint64_t n0, uint64_t n1,
                 float* out) {
  const uint64_t K = geo.k, G = geo.groups;
  if (st.g_idx)
    for (uint64_t k = 0; k < K; ++k)
      if (st.g_idx[k] < 0 || static_cast<uint64_t>(st.g_idx[k]) >= G) return false;
  std::vector<uint8_t> codes(K), zeros(G);
  std::vector<float> scales(G);
  for (uint64_t n = n0; n < n1; ++n) {
    int4_unpack(s, geo, st, n, n + 1, codes.data(), zeros.data(), scales.data());
    for (uint64_t k = 0; k < K; ++k) {
      const uint64_t g = st.g_idx ? static_cast<uint64_t>(st.g_idx[k]) : k / geo.group;
      out[(n - n0) * K + k] = int4_dequant(codes[k], zeros[g], scales[g]);
    }
  }
  return true;
}

}  // namespace ckpt::ops
