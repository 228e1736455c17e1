// INT4 (W4A16) weight quantization, round to nearest (RTN): the one numerical definition, and the
// packings of the three checkpoint formats that carry it (issue 13).
//
// A Linear's weight W is [N, K] = [out_features, in_features], row-major. It is quantized in
// groups of G consecutive elements along K of one row (G = group_size, or K for group_size -1).
// For each group, in IEEE float32 (every BF16/F16 input value is exact in float32):
//
//   symmetric:  a = max |x|;                     s = a / 7.5          zero z = 8
//   asymmetric: lo = min(min x, 0), hi = max(max x, 0); s = (hi - lo) / 15
//   stored scale S = s rounded (RNE) to the scale dtype; S is what every later step uses. An S
//               that rounds to 0 becomes the dtype's smallest positive value (no division by 0);
//               an S that overflows the dtype (F16: a range above ~491 000) is an error.
//   asymmetric: z = clamp(RNE(-lo / S), 0, 15)
//   code        q = clamp(RNE(x / S) + z, 0, 15)        (RNE = round half to even, float32 x / S)
//   dequantized w' = (q - z) · S
// A NaN or ±Inf element is an error. A group whose values are all zero (hi = lo = 0) has no
// scale of its own; it gets the one its format's reference quantizer gives it, and codes equal
// to its zero so that it decodes to exactly 0:
//   GPTQ: S = F16(2/15), z = 8 sym, 7 asym      (GPTQModel/AutoGPTQ widen the range to [-1, 1];
//                                                the asym zero RNE(1 / float32(2/15)) = 7)
//   AWQ:  S = F16(F16(1e-5) / 15), z = 8 sym, 0 asym   (AutoAWQ clamps the range at 1e-5)
//   compressed-tensors: S = the scale dtype's epsilon (torch.finfo(dtype).eps), z = 8
//                                               (calculate_qparams replaces a zero scale by eps)
//
// Where the reference quantizers differ from this definition, and why it is what it is:
//  - Symmetric scale: absmax / 7.5 as compressed-tensors' calculate_qparams
//    (vllm-project/compressed-tensors: quantization/utils/helpers.py, bit_range 15 / 2) and
//    GPTQModel's Quantizer (gptqmodel/quantization/quantizer.py: (xmax - xmin) / 15 with
//    xmin = -absmax; the same float32 value, since 2a is exact). GPTQModel keeps xmin = 0 when no
//    value is negative and then uses absmax / 15 (the top codes clip at 7/15 of the range); AutoAWQ's
//    symmetric mode divides by 7. We always divide by 7.5.
//  - Asymmetric range: forced to contain 0 as GPTQModel and compressed-tensors do; AutoAWQ
//    (awq/quantize/quantizer.py pseudo_quantize_tensor) uses the raw min/max, so an all-positive
//    group there gets zero 0 and clips its top codes.
//  - Scale rounding before use: AutoAWQ and compressed-tensors quantize with the scale as stored
//    (F16 / the weight dtype); GPTQModel quantizes with the float32 scale and stores F16. AutoAWQ
//    and compressed-tensors also round the range hi - lo to their dtype before dividing (on
//    normal BF16 weights compressed-tensors' asymmetric scale is then one unit away from ours in
//    about a quarter of the groups); we divide the float32 range.
//  - Zero from the stored scale: AutoAWQ and compressed-tensors compute it from their stored-dtype
//    scale (in that dtype's arithmetic); GPTQModel from the float32 scale. We use float32 division
//    by the stored scale.
//  - Rounding: RNE(x / S) + z (GPTQModel, AutoAWQ, vLLM's quantize_weights); compressed-tensors
//    computes round(x / S + z) in the weight's dtype (forward_helpers.py _quantize), which differs
//    on exact ties when z is odd and where x / S + z rounds in BF16. Those packings are still read
//    back by our decoders (tests/unit/test_int4_formats.cpp decodes each reference's packing).
//
// The *_reference functions are the scalar definition. int4_quantize_fast (SIMD) and
// kernels/int4_quant.cu are tested against them bit for bit.
//
// Layouts written (all words little-endian 32-bit; "nibble i" = bits 4i..4i+3):
//   GPTQ (AutoGPTQ/GPTQModel pack, vLLM gptq/gptq_marlin):
//     qweight I32 [K/8, N]   word (r, n) nibble i = q[n][8r + i]
//     qzeros  I32 [G, N/8]   word (g, m) nibble i = (z[8m + i][g] - zero_offset) & 15
//                            zero_offset 1 = "checkpoint_format: gptq" (v1; symmetric 0x77777777),
//                            0 = "gptq_v2". v1 readers add 1 back WITHOUT masking, so a zero of 0
//                            (stored 0xF) reads back as 16: v1 cannot hold zero 0 (see
//                            int4_gptq_v1_zero_ok).
//     scales  F16 [G, N]     g_idx I32 [K] = k / G
//   AWQ GEMM (AutoAWQ awq/modules/linear/gemm.py, vLLM awq/awq_marlin):
//     qweight I32 [K, N/8]   word (k, m) nibble i = q[8m + kAwqOrder[i]][k]
//     qzeros  I32 [G, N/8]   word (g, m) nibble i = z[8m + kAwqOrder[i]][g]   (no offset)
//     scales  F16 [G, N]
//   compressed-tensors pack-quantized (compressors/pack_quantized/{base,helpers}.py):
//     weight_packed     I32 [N, ceil(K/8)]  word (n, j) nibble i = q[n][8j + i] (0 past K)
//     weight_scale      scale dtype [N, G]
//     weight_zero_point I32 [ceil(N/8), G]  word (m, g) nibble i = z[8m + i][g] (0 past N), asym only
//     weight_shape      I64 [2] = {N, K}
//   (The stored nibble is the unsigned code / zero in every format: compressed-tensors' signed
//   value v in [-8, 7] is packed as v + 8.)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "ops/fp8_quant.h"

namespace ckpt::ops {

enum class Int4Format : uint8_t { kGptq, kAwq, kCompressedTensors };
const char* int4_format_name(Int4Format f);  // "gptq", "awq", "compressed-tensors"

// AWQ's nibble order: nibble i of a word holds column 8m + kAwqOrder[i].
inline constexpr std::array<int, 8> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};
// Its inverse: column 8m + c sits in nibble kAwqNibble[c].
inline constexpr std::array<int, 8> kAwqNibble = {0, 4, 1, 5, 2, 6, 3, 7};

struct Int4Scheme {
  Int4Format format = Int4Format::kGptq;
  int64_t group_size = 128;        // > 0 and dividing K, or -1 (one group spanning K)
  bool symmetric = true;
  DType scale_dtype = DType::F16;  // F16 for GPTQ/AWQ; the weight's dtype for compressed-tensors
  int gptq_zero_offset = 1;        // GPTQ qzeros: 1 = v1 ("gptq"), 0 = "gptq_v2"
};

// Why `scheme` cannot quantize a [n, k] weight, or "" when it can: K % G (G > 0), GPTQ K % 8 and
// N % 8, AWQ N % 8, a scale dtype other than BF16/F16/F32 (F16 only for GPTQ/AWQ).
std::string int4_shape_problem(const Int4Scheme& scheme, uint64_t n, uint64_t k);

// The group grid of a [n, k] weight.
struct Int4Geometry {
  uint64_t n = 0, k = 0;
  uint64_t group = 0;   // elements per group (k for group_size -1)
  uint64_t groups = 0;  // groups per row (k / group)
};
Int4Geometry int4_geometry(const Int4Scheme& scheme, uint64_t n, uint64_t k);

// The shapes of the arrays a format stores for one weight (see the table above). `zeros` is empty
// where the format stores none (compressed-tensors symmetric); `g_idx` is empty except for GPTQ;
// `shape` ({2}) only for compressed-tensors.
struct Int4Shapes {
  std::vector<uint64_t> weights, zeros, scales, g_idx, shape;
};
Int4Shapes int4_shapes(const Int4Scheme& scheme, uint64_t n, uint64_t k);

// One group's parameters: the stored scale (exact in the scheme's scale dtype) and zero (0..15).
struct Int4Params {
  float scale = 0;
  uint8_t zero = 0;
};

// The first problem met while quantizing (in row-major order of the block), or none.
struct Int4Issue {
  enum Kind : uint8_t { kNone, kNonFinite, kScaleOverflow };
  Kind kind = kNone;
  uint64_t row = 0, col = 0;  // whole-weight indices: the element, or the group's first element
  float value = 0;            // the element, or the group's range (a or hi - lo)
  explicit operator bool() const { return kind != kNone; }
};
// Throws ckpt::Error (kCheckFailed) with one line naming the file, the tensor and the element.
[[noreturn]] void int4_fail(const Int4Issue& issue, const Int4Scheme& scheme, const std::string& file,
                            const std::string& tensor);

// A block of the source weight as a streaming producer holds it: rows [row0, row0 + rows) and
// columns [col0, col0 + cols) of W, `data` pointing at element (row0, col0), rows `stride`
// elements apart. col0 and col0 + cols are group boundaries (0 and K for group_size -1).
struct Int4Source {
  const uint8_t* data = nullptr;
  DType dtype = DType::BF16;  // BF16, F16 or F32
  uint64_t stride = 0;
  uint64_t row0 = 0, rows = 0, col0 = 0, cols = 0;
};

// The block's group parameters: params[r * (cols / group) + j] for row row0 + r and the block's
// j-th group.
Int4Issue int4_params_reference(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Source& src,
                                Int4Params* params);

// Parameters and codes of the block in one pass. Codes are written only for columns [kb, ke)
// (kb a multiple of 8 inside the block; ke a multiple of 8 or K), packed along K eight to a word
// with column k in nibble k % 8 — the layout of compressed-tensors' weight_packed, and the
// transpose of GPTQ's qweight:  words[r * words_stride + (k - kb) / 8]. Nibbles past K are 0.
// Adds the error of columns [kb, ke) to `stats` when it is not null.
Int4Issue int4_quantize_reference(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Source& src,
                                  uint64_t kb, uint64_t ke, Int4Params* params, uint32_t* words,
                                  uint64_t words_stride, Fp8ErrorStats* stats);

// The same bytes (and issues) as int4_quantize_reference, through the fastest loops this CPU has.
// Its stats differ from the reference's in the last bits (float32 terms summed in another order).
// With kb == ke it computes the parameters alone (one scan of the block).
//
// Streaming (the executor asks for any byte range of an output tensor, plan/plan.h): what a
// producer reads for output rows [a, b) of each array, memory bounded by a few times the chunk:
//   compressed-tensors weight_packed rows [a, b): source rows [a, b), whole (contiguous);
//     quantize them with [kb, ke) = [0, K) and copy the words out.
//   GPTQ qweight rows [a, b) / AWQ qweight rows [a, b): source columns [8a, 8b) / [a, b) of every
//     row, widened to whole groups (at most one partial group at each end); quantize the block
//     with [kb, ke) = those columns, then int4_words_to_gptq / int4_words_to_awq into place.
//     For a 1 MiB chunk of a 4096-row weight that is 512 columns of BF16: 4 MiB in.
//   scales / qzeros / weight_scale / weight_zero_point: the parameters of their groups and rows
//     (kb == ke), then int4_store_scales / int4_store_zeros.
// Parameters depend only on their own group, so any split gives the same bytes.
Int4Issue int4_quantize_fast(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Source& src,
                             uint64_t kb, uint64_t ke, Int4Params* params, uint32_t* words, uint64_t words_stride,
                             Fp8ErrorStats* stats);

// int4_quantize_fast over whole rows, with the codes written straight into GPTQ's qweight
// [K/8, N] or AWQ's [K, N/8] (`qweight`: the whole weight's array, word (0, 0)) instead of
// K-packed: the words of rows [src.row0, src.row0 + src.rows) (src.col0 == 0, src.cols == K; for
// AWQ row0 and rows multiples of 8), params and stats as int4_quantize_fast with kb = 0, ke = K.
// The same bytes as int4_quantize_fast followed by int4_words_to_gptq / int4_words_to_awq, without
// a pass over a K-packed copy of the block: it goes 16 rows (GPTQ) / 128 rows (AWQ) at a time,
// aligned to those multiples of the weight's rows, through a K-packed buffer in the core's cache,
// and each such piece's 16-word runs of qweight (whole 64-byte lines where `qweight` is 64-byte
// aligned and N a multiple of 16 / 128) are written with non-temporal stores: no read of the
// line before it is overwritten. Its stats are summed per piece (another order of the same terms).
Int4Issue int4_quantize_qweight(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Source& src,
                                Int4Params* params, uint32_t* qweight, Fp8ErrorStats* stats);

// Every CPU path, so the tests can compare each with the reference.
enum class Int4Path { kPortable, kAvx2, kAvx512 };
const char* int4_path_name(Int4Path p);
std::vector<Int4Path> int4_paths_on_this_cpu();  // portable first, fastest last
Int4Issue int4_quantize_fast_on(Int4Path path, const Int4Scheme& scheme, const Int4Geometry& geo,
                                const Int4Source& src, uint64_t kb, uint64_t ke, Int4Params* params,
                                uint32_t* words, uint64_t words_stride, Fp8ErrorStats* stats);

// --- from K-packed words and parameters to each format's arrays ------------------------------
// `words` as int4_quantize_* writes them: rows [0, rows) of the block, `nwords` words each.

// GPTQ qweight: out[j * out_stride + r] = words[r * words_stride + j] (a 32-bit transpose). For a
// block of rows [row0, ...) and words from column kb, point `out` at qweight[kb / 8][row0].
void int4_words_to_gptq(const uint32_t* words, uint64_t words_stride, uint64_t rows, uint64_t nwords,
                        uint32_t* out, uint64_t out_stride);
// AWQ qweight: for the block's row r (rows a multiple of 8) and column kb + c:
// out[c * out_stride + r / 8] nibble i = nibble of row 8(r / 8) + kAwqOrder[i]. Point `out` at
// qweight[kb][row0 / 8] (row0 a multiple of 8).
void int4_words_to_awq(const uint32_t* words, uint64_t words_stride, uint64_t rows, uint64_t nwords, uint32_t* out,
                       uint64_t out_stride);
// The inverses (for decoding, tests and relayouts).
void int4_gptq_to_words(const uint32_t* qweight, uint64_t q_stride, uint64_t rows, uint64_t nwords, uint32_t* words,
                        uint64_t words_stride);
void int4_awq_to_words(const uint32_t* qweight, uint64_t q_stride, uint64_t rows, uint64_t nwords, uint32_t* words,
                       uint64_t words_stride);

// A rectangle of group parameters: rows [row0, row0 + rows) of W, groups [g0, g0 + ngroups);
// element (r, j) at p[r * stride + j].
struct Int4ParamsView {
  const Int4Params* p = nullptr;
  uint64_t stride = 0;
  uint64_t row0 = 0, rows = 0, g0 = 0, ngroups = 0;
};

// Scales in the scheme's scale dtype, little-endian, into a whole-tensor array:
// [G, N] for GPTQ/AWQ (element (g, n) at out[(g * N + n) * size]), [N, G] for compressed-tensors.
void int4_store_scales(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4ParamsView& v, uint8_t* out);
// Zeros packed into the format's whole-tensor zero array (GPTQ/AWQ [G, N/8], compressed-tensors
// [ceil(N/8), G]). A word is whole only when all 8 of its rows are in the view: the view's rows
// must be whole words (row0 % 8 == 0 and rows % 8 == 0, or ending at N); words are overwritten.
void int4_store_zeros(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4ParamsView& v, uint32_t* out);
// GPTQ g_idx[k] = k / G for k in [k0, k1).
void int4_store_g_idx(const Int4Geometry& geo, uint64_t k0, uint64_t k1, int32_t* out);

// Whether GPTQ v1 qzeros can hold a zero (v1 readers decode stored (z - 1) & 15 as stored + 1,
// unmasked: z = 0 comes back as 16).
inline bool int4_gptq_v1_zero_ok(uint8_t z) { return z != 0; }

// --- decoding every format ----------------------------------------------------------------------

// One weight's stored arrays, whole tensors, as little-endian bytes of the format's layout.
struct Int4Stored {
  const uint32_t* weights = nullptr;  // qweight / weight_packed
  const uint32_t* zeros = nullptr;    // qzeros / weight_zero_point; null: none (z = 8)
  const uint8_t* scales = nullptr;    // in scheme.scale_dtype
  const int32_t* g_idx = nullptr;     // GPTQ only; null: k / G (act-order g_idx honoured)
};
// The codes (0..15) and zeros (GPTQ v1: stored + 1, which may be 16) of rows [n0, n1) as their
// readers see them: codes[(n - n0) * K + k], zeros[(n - n0) * G + g], scales as float32.
void int4_unpack(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Stored& st, uint64_t n0, uint64_t n1,
                 uint8_t* codes, uint8_t* zeros, float* scales);
// The first stored value its readers would misread, or none (kind kNone): a scale that is not
// finite and > 0; a zero point of 16 (GPTQ v1 stored 0xF) or, in a symmetric scheme, other than 8;
// compressed-tensors nibbles past K (codes) or past N (zero points) that are not 0; with act-order
// a g_idx value outside [0, G), without it one other than g_idx[0] + k / G (vLLM then ignores g_idx:
// decode such a weight with g_idx null). `index` is the element (word for packed
// arrays) of the named array. `st.weights` may be null (the padding nibbles are then not checked).
struct Int4ArrayIssue {
  enum Array : uint8_t { kNone, kWeights, kZeros, kScales, kGIdx };
  Array array = kNone;
  uint64_t index = 0;
  std::string rule;
  explicit operator bool() const { return array != kNone; }
};
Int4ArrayIssue int4_check_stored(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Stored& st, bool act_order);
// Dequantized rows [n0, n1): out[(n - n0) * K + k] = (q - z) · S in float32, with each column's
// group from g_idx where the format has one. False (nothing decoded) when a g_idx value lies
// outside [0, G).
bool int4_decode(const Int4Scheme& scheme, const Int4Geometry& geo, const Int4Stored& st, uint64_t n0, uint64_t n1,
                 float* out);

}  // namespace ckpt::ops
