// Reference encoders, ported from ggml-org/ggml src/ggml-quants.c (`quantize_row_*_ref`,
// `make_qx_quants`, `make_qkx2_quants`, `nearest_int`) and src/ggml-impl.h (fp32 -> fp16/bf16).
// Bit-identical output depends on float32 arithmetic in ggml's exact loop order, so this file is
// compiled with -ffp-contract=off (CMakeLists.txt): a fused multiply-add would round differently.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "ops/float_convert.h"
#include "ops/ggml_blocks.h"
#include "ops/ggml_blocks_detail.h"

namespace ckpt::ops {

namespace {

constexpr int kQK = 32;     // QK8_0, QK4_0, QK4_1, QK5_0
constexpr int kQKK = 256;   // QK_K
constexpr float kGroupMaxEps = 1e-15f;  // GROUP_MAX_EPS

void put_f16(uint8_t* p, float f) {
  const uint16_t h = ggml_fp32_to_fp16(f);
  p[0] = static_cast<uint8_t>(h);
  p[1] = static_cast<uint8_t>(h >> 8);
}

float get_f16(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// Round half to even through the float32 mantissa (valid for |f| <= 4194303, as ggml asserts;
// every caller's argument is bounded by the block's own maximum).
int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

// (int8_t)f or (uint8_t)f as ggml's C code writes them, without their undefined behaviour for NaN
// and out-of-range values: x86-64 compilers convert through a 32-bit cvttss2si (truncation toward
// zero; NaN and values outside int32 give 0x80000000, "integer indefinite") and keep the low byte,
// so that is what libggml's quantizers store for such inputs, and what this returns.
int8_t float_to_int8_as_x86(float f) {
  int32_t i = INT32_MIN;
  if (f > -2147483904.0f && f < 2147483648.0f) i = static_cast<int32_t>(f);
  return static_cast<int8_t>(static_cast<uint32_t>(i) & 0xFFu);
}

// block_q8_0: d (f16), qs[32] (int8).
void q8_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK, y += 34) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; j++) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);  // ggml's MAX
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < kQK; ++j) y[2 + j] = static_cast<uint8_t>(float_to_int8_as_x86(std::roundf(x[j] * id)));
  }
}

// block_q4_0: d (f16), qs[16]; byte j holds element j (low nibble) and j + 16 (high nibble).
void q4_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK, y += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; j++) {
      const float v = x[j];
      if (amax < std::fabs(v)) {
        amax = std::fabs(v);
        max = v;
      }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t xi0 = static_cast<uint8_t>(std::min(15, static_cast<int>(float_to_int8_as_x86(x[j] * id + 8.5f))));
      const uint8_t xi1 = static_cast<uint8_t>(std::min(15, static_cast<int>(float_to_int8_as_x86(x[kQK / 2 + j] * id + 8.5f))));
      y[2 + j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

// block_q4_1: d (f16), m (f16), qs[16] as Q4_0.
void q4_1(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK, y += 20) {
    float min = 3.402823466e+38f, max = -3.402823466e+38f;
    for (int j = 0; j < kQK; j++) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    put_f16(y + 2, min);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[kQK / 2 + j] - min) * id;
      const uint8_t xi0 = static_cast<uint8_t>(std::min(15, static_cast<int>(float_to_int8_as_x86(x0 + 0.5f))));
      const uint8_t xi1 = static_cast<uint8_t>(std::min(15, static_cast<int>(float_to_int8_as_x86(x1 + 0.5f))));
      y[4 + j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

// block_q5_0: d (f16), qh[4] (bit 4 of each element, element j at bit j), qs[16] as Q4_0.
void q5_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK, y += 22) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; j++) {
      const float v = x[j];
      if (amax < std::fabs(v)) {
        amax = std::fabs(v);
        max = v;
      }
    }
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t xi0 = static_cast<uint8_t>(std::min(31, static_cast<int>(float_to_int8_as_x86(x[j] * id + 16.5f))));
      const uint8_t xi1 = static_cast<uint8_t>(std::min(31, static_cast<int>(float_to_int8_as_x86(x[kQK / 2 + j] * id + 16.5f))));
      y[6 + j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
      qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
      qh |= ((xi1 & 0x10u) >> 4) << (j + kQK / 2);
    }
    for (int b = 0; b < 4; ++b) y[2 + b] = static_cast<uint8_t>(qh >> (8 * b));
  }
}

// block_q5_1: d (f16), m (f16), qh[4], qs[16] as Q5_0; no clamp (ggml has none).
void q5_1(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += kQK, y += 24) {
    float min = 3.402823466e+38f, max = -3.402823466e+38f;
    for (int j = 0; j < kQK; j++) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    put_f16(y + 2, min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t xi0 = static_cast<uint8_t>(float_to_int8_as_x86((x[j] - min) * id + 0.5f));
      const uint8_t xi1 = static_cast<uint8_t>(float_to_int8_as_x86((x[kQK / 2 + j] - min) * id + 0.5f));
      y[8 + j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
      qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
      qh |= ((xi1 & 0x10u) >> 4) << (j + kQK / 2);
    }
    for (int b = 0; b < 4; ++b) y[4 + b] = static_cast<uint8_t>(qh >> (8 * b));
  }
}

// make_qx_quants with rmse_type 1 and no importance weights (the only use: Q6_K).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    const float diff = scale * L[i] + min - x[i];
    best_error += weights[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * Laux[i] + this_min - x[i];
        cur_error += weights[i] * (diff * diff);
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// The Q4_K and Q5_K super-block: 8 sub-blocks of 32 with 6-bit scales and mins, the sub-blocks'
// scales, mins and first quants from `search`. Returns the requantized values in L (0..nmax); the
// caller packs them.
void k_quant_scales(const float* x, uint8_t* y_d, uint8_t* y_scales, uint8_t* L, int nmax, float rmin, int nstep,
                    const KQuantSearch& search) {
  float mins[kQKK / 32], scales[kQKK / 32];
  search.scale_min(x, nmax, rmin, nstep, scales, mins, L);
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQKK / 32; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      y_scales[j] = ls;
      y_scales[j + 4] = lm;
    } else {
      y_scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      y_scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      y_scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  put_f16(y_d, max_scale / 63.f);
  put_f16(y_d + 2, max_min / 63.f);
  const float dd = get_f16(y_d), dmin = get_f16(y_d + 2);
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, y_scales, &sc, &m);
    const float d = dd * sc;
    if (!d) continue;  // keeps the first pass's quants, as ggml does
    const float dm = dmin * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// block_q4_K: d, dmin (f16), scales[12], qs[128].
void q4_k(const float* x, uint8_t* y, int64_t nb, const KQuantSearch& search) {
  uint8_t L[kQKK];
  for (int64_t i = 0; i < nb; i++, x += kQKK, y += 144) {
    std::memset(y, 0, 144);
    k_quant_scales(x, y, y + 4, L, 15, -1.f, 20, search);
    uint8_t* q = y + 16;
    for (int j = 0; j < kQKK; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
  }
}

// block_q5_K: d, dmin (f16), scales[12], qh[32], qs[128].
void q5_k(const float* x, uint8_t* y, int64_t nb, const KQuantSearch& search) {
  uint8_t L[kQKK];
  for (int64_t i = 0; i < nb; i++, x += kQKK, y += 176) {
    std::memset(y, 0, 176);
    k_quant_scales(x, y, y + 4, L, 31, -0.5f, 15, search);
    uint8_t* qh = y + 16;
    uint8_t* ql = y + 48;
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kQKK; n += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        int l2 = L[n + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<uint8_t>(m1 << 2);
      m2 = static_cast<uint8_t>(m2 << 2);
    }
  }
}

// block_q6_K: ql[128], qh[64], scales[16] (int8), d (f16).
void q6_k(const float* x, uint8_t* y, int64_t nb, const KQuantSearch& search) {
  int8_t L[kQKK];
  float scales[kQKK / 16];
  for (int64_t i = 0; i < nb; i++, x += kQKK, y += 210) {
    search.scale(x, scales, L);
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < kQKK / 16; ++ib) {
      const float scale = scales[ib];
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    std::memset(y, 0, 210);
    if (max_abs_scale < kGroupMaxEps) {
      put_f16(y + 208, 0.f);
      continue;
    }
    const float iscale = -128.f / max_scale;
    put_f16(y + 208, 1 / iscale);
    int8_t* sc = reinterpret_cast<int8_t*>(y + 192);
    for (int ib = 0; ib < kQKK / 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    const float dd = get_f16(y + 208);
    for (int j = 0; j < kQKK / 16; ++j) {
      const float d = dd * sc[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearest_int(x[16 * j + ii] / d);
        l = std::max(-32, std::min(31, l));
        L[16 * j + ii] = static_cast<int8_t>(l + 32);
      }
    }
    uint8_t* ql = y;
    uint8_t* qh = y + 128;
    for (int j = 0; j < kQKK; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l + 0] & 0xF;
        const uint8_t q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF;
        const uint8_t q4 = L[j + l + 96] & 0xF;
        ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace

namespace {

void scale_min_reference(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins, uint8_t* L) {
  float weights[32];
  uint8_t Laux[32];
  for (int j = 0; j < kQKK / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
  }
}

void scale_reference(const float* x, float* scales, int8_t* L) {
  for (int j = 0; j < kQKK / 16; ++j) scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j);
}

}  // namespace

const KQuantSearch kKQuantSearchReference{scale_min_reference, scale_reference};

void encode_k_quants(GgmlType t, const float* x, uint8_t* out, uint64_t n, const KQuantSearch& search) {
  if (n % kQKK) throw std::logic_error("encode_row: row is not a whole number of blocks");
  const auto nb = static_cast<int64_t>(n / kQKK);
  if (t == GgmlType::Q4_K) return q4_k(x, out, nb, search);
  if (t == GgmlType::Q5_K) return q5_k(x, out, nb, search);
  if (t == GgmlType::Q6_K) return q6_k(x, out, nb, search);
  throw std::logic_error("encode_k_quants: not a K-quant type");
}

uint16_t ggml_fp32_to_fp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>(((u >> 16) & 0x8000) | 0x7E00);
  return f32_to_f16(f);
}

uint16_t ggml_fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 64);
  return static_cast<uint16_t>((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

void encode_row_reference(GgmlType t, const float* x, uint8_t* out, uint64_t n) {
  const GgmlTypeInfo& info = ggml_type_info(t);
  if (n % info.block) throw std::logic_error("encode_row: row is not a whole number of blocks");
  const auto nb = static_cast<int64_t>(n / info.block);
  switch (t) {
    case GgmlType::F32:
      std::memcpy(out, x, n * 4);
      return;
    case GgmlType::F16:
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t h = ggml_fp32_to_fp16(x[i]);
        out[2 * i] = static_cast<uint8_t>(h);
        out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
      return;
    case GgmlType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t h = ggml_fp32_to_bf16(x[i]);
        out[2 * i] = static_cast<uint8_t>(h);
        out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
      return;
    case GgmlType::Q8_0: return q8_0(x, out, nb);
    case GgmlType::Q4_0: return q4_0(x, out, nb);
    case GgmlType::Q4_1: return q4_1(x, out, nb);
    case GgmlType::Q5_0: return q5_0(x, out, nb);
    case GgmlType::Q5_1: return q5_1(x, out, nb);
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return encode_k_quants(t, x, out, n, kKQuantSearchReference);
  }
  throw std::logic_error("encode_row: unknown ggml type");
}

}  // namespace ckpt::ops
