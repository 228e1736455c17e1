#include "ops/fp8_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "ops/cast.h"
#include "ops/float_bits.h"
#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "ops/fp8_quant_detail.h"

namespace ckpt::ops {

bool fp8_input_dtype_ok(DType t) { return t == DType::BF16 || t == DType::F16 || t == DType::F32; }
bool fp8_scale_dtype_ok(DType t) { return fp8_input_dtype_ok(t); }

float load_as_f32(const uint8_t* in, DType dtype, uint64_t i) {
  switch (dtype) {
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, in + 2 * i, 2);
      return bf16_to_f32(h);
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, in + 2 * i, 2);
      return f16_to_f32(h);
    }
    case DType::F32: {
      float f;
      std::memcpy(&f, in + 4 * i, 4);
      return f;
    }
    default:
      throw std::logic_error("fp8: unsupported input dtype");
  }
}

namespace {

// The scale's value after rounding to its storage dtype.
float round_to_storage(float s, DType dt) {
  switch (dt) {
    case DType::F32: return s;
    case DType::BF16: return bf16_to_f32(f32_to_bf16(s));
    case DType::F16: return f16_to_f32(f32_to_f16(s));
    default: throw std::logic_error("fp8: unsupported scale dtype");
  }
}

float smallest_positive(DType dt) {
  switch (dt) {
    case DType::F32: return std::numeric_limits<float>::denorm_min();
    case DType::BF16: return bf16_to_f32(1);
    case DType::F16: return f16_to_f32(1);
    default: throw std::logic_error("fp8: unsupported scale dtype");
  }
}

}  // namespace

float fp8_scale_for_amax(float amax, DType scale_dtype) {
  if (amax == 0.0f) return 1.0f;
  float s = round_to_storage(amax / kE4M3FNMax, scale_dtype);
  return s > 0.0f ? s : smallest_positive(scale_dtype);
}

void store_scale(float scale, DType scale_dtype, uint8_t* out) {
  switch (scale_dtype) {
    case DType::F32: std::memcpy(out, &scale, 4); return;
    case DType::BF16: {
      uint16_t h = f32_to_bf16(scale);
      std::memcpy(out, &h, 2);
      return;
    }
    case DType::F16: {
      uint16_t h = f32_to_f16(scale);
      std::memcpy(out, &h, 2);
      return;
    }
    default: throw std::logic_error("fp8: unsupported scale dtype");
  }
}

uint8_t fp8_quantize_value(float x, float scale) {
  return f32_to_e4m3fn(std::clamp(x / scale, -kE4M3FNMax, kE4M3FNMax));
}

bool fp8_amax_reference(const Fp8Grid& grid, DType dtype, const uint8_t* in, std::vector<float>& amax) {
  amax.assign(grid.groups(), 0.0f);
  for (uint64_t e = 0; e < grid.numel(); ++e) {
    float x = load_as_f32(in, dtype, e);
    if (!std::isfinite(x)) return false;
    float& m = amax[grid.group_of(e)];
    m = std::max(m, std::fabs(x));
  }
  return true;
}

void fp8_quantize_reference(const Fp8Grid& grid, DType dtype, const uint8_t* in, const std::vector<float>& scales,
                            uint8_t* out) {
  for (uint64_t e = 0; e < grid.numel(); ++e)
    out[e] = fp8_quantize_value(load_as_f32(in, dtype, e), scales[grid.group_of(e)]);
}

void Fp8ErrorStats::merge(const Fp8ErrorStats& o) {
  sum_sq_err += o.sum_sq_err;
  sum_sq += o.sum_sq;
  max_abs_err = std::max(max_abs_err, o.max_abs_err);
}

double Fp8ErrorStats::relative_error() const { return sum_sq > 0 ? std::sqrt(sum_sq_err / sum_sq) : 0.0; }

// --- fast path ----------------------------------------------------------------------------------
namespace {

constexpr uint64_t kTile = 2048;  // elements widened to float32 at a time (8 KiB, stays in L1)

// Widens n <= kTile elements to float32 (the cast module's fastest path for this CPU).
void widen(DType dt, const uint8_t* in, uint64_t n, float* out) {
  if (dt == DType::F32) std::memcpy(out, in, n * 4);
  else cast(dt, DType::F32, in, reinterpret_cast<uint8_t*>(out), n);
}

// E4M3FN(clamp(v, -448, 448)) for any non-NaN v, and the magnitude of the value that code
// stands for; branch-free, and lane for lane what fp8_quant_avx512.cpp computes (tested against
// the reference on every input that matters). The FPU does the rounding:
//  - a = min(|v|, 448) on the magnitude bits (for non-NaN values integer order is numeric order).
//  - E4M3 magnitudes in [2^E, 2^(E+1)) are spaced 2^(E-3) apart for E >= -6, and the subnormals
//    below 2^-6 are spaced 2^-9, as if E were -6. With c = 2^20 * 2^max(E, -6), a + c lies in
//    [c, 2c), where float32 values are spaced exactly that far apart: the float addition s = a + c
//    rounds a to the E4M3 grid, to nearest, ties to even (an even multiple is an even E4M3
//    mantissa), and s - c is the E4M3 magnitude, exactly.
//  - bits(s) - bits(c) = k in [0, 16] counts the grid steps above 0, so the magnitude code is
//    k + 8 * (max(E, -6) + 6): k = 8 + mantissa for a normal result (16 when rounding carried
//    into the next binade, which the sum then handles), k = mantissa for a subnormal one.
// (A shorter route, bits((s - c) * 2^-120) >> 20, makes float32 subnormals for E4M3 subnormals,
// which this CPU computes at a fraction of the speed.)
struct Encoded {
  uint8_t code;
  float magnitude;
};
inline Encoded e4m3fn_saturating(float v) {
  const uint32_t u = f32_bits(v);
  const uint32_t a = std::min(u & 0x7FFFFFFFu, 0x43E00000u);  // 0x43E00000 = 448.0f
  // 2^max(E, -6) (0x3C800000 = 2^-6), as a conditional: GCC 12 stops vectorizing the loops with
  // std::max here beside the std::min above.
  const uint32_t exponent = a & 0x7F800000u;
  const uint32_t e = exponent > 0x3C800000u ? exponent : 0x3C800000u;
  const float c = f32_from_bits(e + (20u << 23));
  const float s = f32_from_bits(a) + c;
  const uint32_t code = (f32_bits(s) - f32_bits(c)) + ((e - 0x3C800000u) >> 20);
  return {static_cast<uint8_t>(((u >> 24) & 0x80u) | code), s - c};
}

// Built for AVX-512 and AVX2 as well as the baseline; the loader picks the best this CPU runs.
// No FMA is enabled, so every clone computes the same values.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CKPT_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CKPT_SIMD_CLONES
#endif

// max |x| as an integer max over the magnitude bits (U: the element's bit pattern): for
// non-negative IEEE values the integer order is the numeric order, and every NaN/Inf sorts above
// every finite value.
template <typename U>
inline U max_magnitude_bits(const uint8_t* in, uint64_t n) {
  constexpr U mask = std::numeric_limits<U>::max() >> 1;  // all bits but the sign
  U m = 0;
  U tile[kTile];
  for (uint64_t t = 0; t < n; t += kTile) {
    const uint64_t k = std::min(kTile, n - t);
    std::memcpy(tile, in + sizeof(U) * t, sizeof(U) * k);
#pragma omp simd reduction(max : m)
    for (uint64_t i = 0; i < k; ++i) m = std::max<U>(m, tile[i] & mask);
  }
  return m;
}

CKPT_SIMD_CLONES float amax_run(DType dt, const uint8_t* in, uint64_t n) {
  const uint32_t m = dt == DType::F32 ? max_magnitude_bits<uint32_t>(in, n) : max_magnitude_bits<uint16_t>(in, n);
  return detail::amax_of_magnitude_bits(dt, m);
}

CKPT_SIMD_CLONES void quantize_run(DType dt, const uint8_t* in, uint64_t n, float scale, uint8_t* out, Fp8ErrorStats* stats) {
  const unsigned esize = dtype_bits(dt) / 8;
  float x[kTile];
  double se = 0, sw = 0;
  uint32_t me = 0;
  for (uint64_t t = 0; t < n; t += kTile) {
    const uint64_t k = std::min(kTile, n - t);
    widen(dt, in + esize * t, k, x);
    uint8_t* o = out + t;
    if (!stats) {
#pragma omp simd
      for (uint64_t i = 0; i < k; ++i) o[i] = e4m3fn_saturating(x[i] / scale).code;
      continue;
    }
    // With the report's error terms, in the scaled domain: w - deq = scale * (w / scale - q).
    // float32 within a tile (a report can afford a few ulps per term), double across tiles; the
    // max |err| as magnitude bits (integer order = numeric order), which vectorizes.
    float tse = 0, tsw = 0;
    uint32_t tme = 0;
#pragma omp simd reduction(+ : tse, tsw) reduction(max : tme)
    for (uint64_t i = 0; i < k; ++i) {
      const float v = x[i] / scale;
      const Encoded e = e4m3fn_saturating(v);
      o[i] = e.code;
      const float d = std::fabs(v) - e.magnitude;
      tse += d * d;
      tsw += x[i] * x[i];
      tme = std::max(tme, f32_bits(d) & 0x7FFFFFFFu);
    }
    se += tse;
    sw += tsw;
    me = std::max(me, tme);
  }
  const double s = scale;
  if (stats) stats->merge({se * s * s, sw, static_cast<double>(f32_from_bits(me)) * s});
}

}  // namespace

const char* fp8_path_name(Fp8Path p) { return p == Fp8Path::kAvx512 ? "avx512" : "portable"; }

std::vector<Fp8Path> fp8_paths_on_this_cpu() {
  std::vector<Fp8Path> paths{Fp8Path::kPortable};
#if defined(__x86_64__)
  if (detail::fp8_avx512_on_this_cpu()) paths.push_back(Fp8Path::kAvx512);
#endif
  return paths;
}

void fp8_amax_fast_on(Fp8Path path, const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first,
                      uint64_t count, float* amax) {
#if defined(__x86_64__)
  if (path == Fp8Path::kAvx512) return detail::fp8_amax_avx512(grid, dtype, in, first, count, amax);
#endif
  const unsigned esize = dtype_bits(dtype) / 8;
  detail::Fp8Runs runs(grid, first, count);
  for (uint64_t off, len, g; runs.next(off, len, g);) amax[g] = std::max(amax[g], amax_run(dtype, in + esize * off, len));
}

void fp8_quantize_fast_on(Fp8Path path, const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first,
                          uint64_t count, const float* scales, uint8_t* out, Fp8ErrorStats* stats) {
#if defined(__x86_64__)
  if (path == Fp8Path::kAvx512) return detail::fp8_quantize_avx512(grid, dtype, in, first, count, scales, out, stats);
#endif
  const unsigned esize = dtype_bits(dtype) / 8;
  detail::Fp8Runs runs(grid, first, count);
  for (uint64_t off, len, g; runs.next(off, len, g);) quantize_run(dtype, in + esize * off, len, scales[g], out + off, stats);
}

namespace {
Fp8Path fastest_path() {
  static const Fp8Path best = fp8_paths_on_this_cpu().back();
  return best;
}
}  // namespace

void fp8_amax_fast(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                   float* amax) {
  fp8_amax_fast_on(fastest_path(), grid, dtype, in, first, count, amax);
}

void fp8_quantize_fast(const Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                       const float* scales, uint8_t* out, Fp8ErrorStats* stats) {
  fp8_quantize_fast_on(fastest_path(), grid, dtype, in, first, count, scales, out, stats);
}

}  // namespace ckpt::ops
