#include "ops/cast.h"

#include "ops/cast_dispatch.h"

namespace ckpt::ops {

bool is_cast_source(DType t) { return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool is_cast_target(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

bool float_format_of(DType t, FloatFormat* f) {
  switch (t) {
    case DType::F64: *f = FloatFormat::kF64; return true;
    case DType::F32: *f = FloatFormat::kF32; return true;
    case DType::F16: *f = FloatFormat::kF16; return true;
    case DType::BF16: *f = FloatFormat::kBF16; return true;
    default: return false;
  }
}

const char* cast_path_name(CastPath p) {
  switch (p) {
    case CastPath::kPortable: return "portable";
    case CastPath::kAvx2: return "avx2+f16c";
    case CastPath::kAvx512: return "avx512f";
  }
  return "?";
}

std::vector<CastPath> cast_paths_on_this_cpu() {
  std::vector<CastPath> paths{CastPath::kPortable};
#if defined(__x86_64__)
  __builtin_cpu_init();
  // Every x86 CPU with AVX2 has F16C (Intel since Ivy Bridge, AMD since Piledriver, both before
  // AVX2), and clang's __builtin_cpu_supports does not know "f16c": AVX2 is the test.
  if (__builtin_cpu_supports("avx2")) paths.push_back(CastPath::kAvx2);
  if (__builtin_cpu_supports("avx512f")) paths.push_back(CastPath::kAvx512);
#endif
  return paths;
}

void cast_reference(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n) {
  detail::visit_cast_pair(in, out, [&]<FloatFormat I, FloatFormat O>() { detail::reference_loop<I, O>(src, dst, n); });
}

void cast_on(CastPath path, DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n) {
  switch (path) {
#if defined(__x86_64__)
    case CastPath::kAvx2: return detail::cast_avx2(in, out, src, dst, n);
    case CastPath::kAvx512: return detail::cast_avx512(in, out, src, dst, n);
#endif
    default: return cast_reference(in, out, src, dst, n);
  }
}

void cast(DType in, DType out, const uint8_t* src, uint8_t* dst, uint64_t n) {
  static const CastPath best = cast_paths_on_this_cpu().back();
  cast_on(best, in, out, src, dst, n);
}

}  // namespace ckpt::ops
