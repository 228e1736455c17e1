#include "formats/pack_codec.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ckpt {

unsigned pack_plane_count(DType t) {
  switch (t) {
    case DType::BF16:
    case DType::F16: return 2;
    case DType::F32: return 4;
    default: return 1;
  }
}

void split_planes_reference(const uint8_t* in, uint64_t n, unsigned k, uint8_t* planes) {
  for (uint64_t i = 0; i < n; ++i)
    for (unsigned p = 0; p < k; ++p) planes[p * n + i] = in[i * k + p];
}

void merge_planes_reference(const uint8_t* const* planes, uint64_t n, unsigned k, uint8_t* out) {
  for (uint64_t i = 0; i < n; ++i)
    for (unsigned p = 0; p < k; ++p) out[i * k + p] = planes[p][i];
}

#if defined(__x86_64__)
// AVX2, where the CPU has it, for the 2-plane split (bf16/f16, the common case): 32 elements a
// step, as the SSE2 loop below but packs work within 128-bit lanes, so a 64-bit permute puts the
// halves in order. Returns the elements done.
__attribute__((target("avx2"))) uint64_t split2_avx2(const uint8_t* in, uint64_t n, uint8_t* lo_out, uint8_t* hi_out) {
  const __m256i lo_mask = _mm256_set1_epi16(0x00ff);
  uint64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 2 * i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 2 * i + 32));
    const __m256i lo = _mm256_packus_epi16(_mm256_and_si256(a, lo_mask), _mm256_and_si256(b, lo_mask));
    const __m256i hi = _mm256_packus_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(b, 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo_out + i), _mm256_permute4x64_epi64(lo, 0xd8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi_out + i), _mm256_permute4x64_epi64(hi, 0xd8));
  }
  return i;
}

// The inverse for merge_planes: the 64-bit permute first, so that the in-lane byte interleave
// yields elements in order.
__attribute__((target("avx2"))) uint64_t merge2_avx2(const uint8_t* lo_in, const uint8_t* hi_in, uint64_t n, uint8_t* out) {
  uint64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i lo = _mm256_permute4x64_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo_in + i)), 0xd8);
    const __m256i hi = _mm256_permute4x64_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi_in + i)), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i), _mm256_unpacklo_epi8(lo, hi));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i + 32), _mm256_unpackhi_epi8(lo, hi));
  }
  return i;
}
#endif

// SSE2 (every x86-64 CPU has it) does 16 elements per step: the high and low bytes of 16-bit
// lanes by shift and mask, narrowed with unsigned saturation (no value exceeds 255 after the
// mask); and the inverse by byte and word interleaving. Tails go through the reference loop.
void split_planes_to(const uint8_t* in, uint64_t n, unsigned k, uint8_t* const* planes) {
  uint64_t i = 0;
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (k == 2 && avx2) i = split2_avx2(in, n, planes[0], planes[1]);
#endif
#if defined(__SSE2__)
  if (k == 2) {
    const __m128i lo_mask = _mm_set1_epi16(0x00ff);
    for (; i + 16 <= n; i += 16) {
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i));
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i + 16));
      __m128i lo = _mm_packus_epi16(_mm_and_si128(a, lo_mask), _mm_and_si128(b, lo_mask));
      __m128i hi = _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes[0] + i), lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes[1] + i), hi);
    }
  } else if (k == 4) {
    const __m128i byte_mask = _mm_set1_epi32(0xff);
    for (; i + 16 <= n; i += 16) {
      __m128i v[4];
      for (int j = 0; j < 4; ++j) v[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 4 * i + 16 * j));
      for (int p = 0; p < 4; ++p) {
        __m128i w[4];
        for (int j = 0; j < 4; ++j) w[j] = _mm_and_si128(_mm_srli_epi32(v[j], 8 * p), byte_mask);
        __m128i lo = _mm_packs_epi32(w[0], w[1]);
        __m128i hi = _mm_packs_epi32(w[2], w[3]);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(planes[p] + i), _mm_packus_epi16(lo, hi));
      }
    }
  }
#endif
  if (k == 1) {
    if (n) std::memcpy(planes[0], in, n);
    return;
  }
  for (; i < n; ++i)
    for (unsigned p = 0; p < k; ++p) planes[p][i] = in[i * k + p];
}

void split_planes(const uint8_t* in, uint64_t n, unsigned k, uint8_t* planes) {
  uint8_t* to[4];
  for (unsigned p = 0; p < k && p < 4; ++p) to[p] = planes + p * n;
  split_planes_to(in, n, k, to);
}

void merge_planes(const uint8_t* const* planes, uint64_t n, unsigned k, uint8_t* out) {
  uint64_t i = 0;
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (k == 2 && avx2) i = merge2_avx2(planes[0], planes[1], n, out);
#endif
#if defined(__SSE2__)
  if (k == 2) {
    for (; i + 16 <= n; i += 16) {
      __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes[0] + i));
      __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes[1] + i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), _mm_unpacklo_epi8(lo, hi));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i + 16), _mm_unpackhi_epi8(lo, hi));
    }
  } else if (k == 4) {
    for (; i + 16 <= n; i += 16) {
      __m128i p[4];
      for (int j = 0; j < 4; ++j) p[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes[j] + i));
      __m128i b01_lo = _mm_unpacklo_epi8(p[0], p[1]), b01_hi = _mm_unpackhi_epi8(p[0], p[1]);
      __m128i b23_lo = _mm_unpacklo_epi8(p[2], p[3]), b23_hi = _mm_unpackhi_epi8(p[2], p[3]);
      __m128i* o = reinterpret_cast<__m128i*>(out + 4 * i);
      _mm_storeu_si128(o + 0, _mm_unpacklo_epi16(b01_lo, b23_lo));
      _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(b01_lo, b23_lo));
      _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(b01_hi, b23_hi));
      _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(b01_hi, b23_hi));
    }
  }
#endif
  if (k == 1) {
    if (n) std::memcpy(out, planes[0], n);
    return;
  }
  for (; i < n; ++i)
    for (unsigned p = 0; p < k; ++p) out[i * k + p] = planes[p][i];
}

namespace {

ZSTD_CCtx* new_cctx(int level) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  if (!c) throw std::bad_alloc();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  if (level == 1) ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, kPackLevel1HashLog);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);     // the group digest covers the bytes
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);  // checked against the declared size
  return c;
}

}  // namespace

double pack_sample_entropy(const uint8_t* plane, uint64_t n) {
  // Four histograms, merged at the end: consecutive equal bytes (an exponent plane is full of
  // them) would otherwise wait on each other's increment.
  uint32_t h[4][256] = {};
  for (unsigned s = 0; s < kPackSampleSlices; ++s) {
    const uint8_t* p = plane + (n - kPackSampleSliceBytes) * s / (kPackSampleSlices - 1);
    for (uint64_t i = 0; i < kPackSampleSliceBytes; i += 4) {
      ++h[0][p[i]];
      ++h[1][p[i + 1]];
      ++h[2][p[i + 2]];
      ++h[3][p[i + 3]];
    }
  }
  constexpr double total = kPackSampleSlices * kPackSampleSliceBytes;
  double bits = 0;
  for (unsigned b = 0; b < 256; ++b) {
    const uint32_t c = h[0][b] + h[1][b] + h[2][b] + h[3][b];
    if (c) bits -= c / total * std::log2(c / total);
  }
  return bits;
}

GroupEncoder::GroupEncoder(int level) : level_(level), cctx_(new_cctx(level)) {}

GroupEncoder::~GroupEncoder() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_)); }

uint64_t GroupEncoder::bound(uint64_t len, unsigned k) {
  const uint64_t n = len / k;
  return k * std::max<uint64_t>(ZSTD_compressBound(n), LiteralsFrameEncoder::bound(n));
}

size_t GroupEncoder::compress_plane(const uint8_t* src, uint64_t n, bool exponent, uint8_t* out) {
  if (exponent && level_ == 1 && kPackExponentLiterals)
    if (const size_t r = literals_.encode(src, n, out, /*refuse_repeats=*/true)) return r;
  const size_t r = ZSTD_compress2(static_cast<ZSTD_CCtx*>(cctx_), out, ZSTD_compressBound(n), src, n);
  if (ZSTD_isError(r)) throw std::runtime_error(std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
  return r;
}

bool GroupEncoder::sample_gains(const uint8_t* plane, uint64_t n) {
  if (n < kPackSampleMinBytes) throw std::logic_error("GroupEncoder::sample_gains: plane below the sampling size");
  constexpr uint64_t sample_len = kPackSampleSlices * kPackSampleSliceBytes;
  sample_.resize(sample_len);
  for (unsigned s = 0; s < kPackSampleSlices; ++s)
    std::memcpy(sample_.data() + s * kPackSampleSliceBytes, plane + (n - kPackSampleSliceBytes) * s / (kPackSampleSlices - 1),
                kPackSampleSliceBytes);
  sample_out_.resize(ZSTD_compressBound(sample_len));
  const size_t r = ZSTD_compress2(static_cast<ZSTD_CCtx*>(cctx_), sample_out_.data(), sample_out_.size(), sample_.data(),
                                  sample_len);
  if (ZSTD_isError(r)) throw std::runtime_error(std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
  return r < sample_len - sample_len / kPackSampleGainDivisor;
}

bool GroupEncoder::worth_compressing(const uint8_t* plane, uint64_t n) {
  if (n < kPackSampleMinBytes) return true;
  return pack_sample_entropy(plane, n) <= kPackSampleSureBits || sample_gains(plane, n);
}

uint64_t GroupEncoder::encode(const uint8_t* data, uint64_t len, unsigned k, uint8_t* out,
                              std::span<EncodedFrame> frames) {
  if (len % k != 0 || len > kPackGroupBytes || frames.size() != k)
    throw std::logic_error("GroupEncoder::encode: bad group shape");
  const uint64_t n = len / k;
  // Plane 0 (the bf16/f16 low byte, usually noise and stored) is split straight to where its
  // stored frame goes, out[0, n), so storing it copies nothing; the others go to scratch, as
  // does plane 0 when it is compressed after all (its frame is written over its bytes).
  const uint8_t* plane[4] = {data};
  if (k > 1) {
    planes_.resize(len);
    uint8_t* to[4] = {out};
    for (unsigned p = 1; p < k; ++p) to[p] = planes_.data() + p * n;
    split_planes_to(data, n, k, to);
    for (unsigned p = 0; p < k; ++p) plane[p] = to[p];
  }
  uint64_t at = 0;
  for (unsigned p = 0; p < k; ++p) {
    const uint8_t* src = plane[p];
    if (worth_compressing(src, n)) {
      if (src == out) {
        if (n) std::memcpy(planes_.data(), out, n);
        src = planes_.data();
      }
      const size_t r = compress_plane(src, n, k > 1 && p == k - 1, out + at);
      if (r < n) {
        frames[p] = {FrameKind::kZstd, static_cast<uint32_t>(r)};
        at += r;
        continue;
      }
    }
    // Noise, or zstd did not shrink it: the raw plane bytes (ZSTD_compressBound(n) >= n).
    frames[p] = {FrameKind::kStored, static_cast<uint32_t>(n)};
    if (n && out + at != src) std::memcpy(out + at, src, n);
    at += n;
  }
  return at;
}

GroupDecoder::GroupDecoder() {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  if (!d) throw std::bad_alloc();
  // A frame holds at most one 1 MiB group: refuse frames that ask for a larger window, so a
  // hostile file cannot make the decoder allocate more than that (zstd's default allows 128 MiB).
  ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 20);
  dctx_ = d;
}

GroupDecoder::~GroupDecoder() { ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(dctx_)); }


FrameError GroupDecoder::decode_frame(FrameKind kind, const uint8_t* src, uint64_t src_len, uint8_t* out,
                                      uint64_t out_len, const char** what) {
  if (kind == FrameKind::kStored) {
    if (src_len != out_len) {
      *what = "a stored frame's size differs from its declared length";
      return FrameError::kWrongLength;
    }
    if (out_len) std::memcpy(out, src, out_len);
    return FrameError::kNone;
  }
  // Exactly one zstd frame, spanning the whole stored range, whose header declares out_len.
  size_t frame_len = ZSTD_findFrameCompressedSize(src, src_len);
  if (ZSTD_isError(frame_len) || frame_len != src_len) {
    *what = "not exactly one zstd frame";
    return FrameError::kCorrupt;
  }
  unsigned long long content = ZSTD_getFrameContentSize(src, src_len);
  if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN) {
    *what = "the zstd frame header declares no content size";
    return FrameError::kCorrupt;
  }
  if (content != out_len) {
    *what = "the zstd frame declares a different length than the container";
    return FrameError::kWrongLength;
  }
  // The output capacity is the declared length: zstd stops with dstSize_tooSmall rather than
  // writing further, whatever the frame's blocks claim (no zip bomb).
  size_t r = ZSTD_decompressDCtx(static_cast<ZSTD_DCtx*>(dctx_), out, out_len, src, src_len);
  if (ZSTD_isError(r)) {
    *what = ZSTD_getErrorName(r);
    return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? FrameError::kWrongLength : FrameError::kCorrupt;
  }
  if (r != out_len) {
    *what = "the zstd frame decodes to a different length than declared";
    return FrameError::kWrongLength;
  }
  return FrameError::kNone;
}

FrameError GroupDecoder::decode_group(const uint8_t* src, std::span<const EncodedFrame> frames, uint64_t len,
                                      uint8_t* out, unsigned* bad_plane, const char** what) {
  const unsigned k = static_cast<unsigned>(frames.size());
  if (k == 0 || k > 4 || len % k != 0) throw std::logic_error("GroupDecoder::decode_group: bad group shape");
  const uint64_t n = len / k;
  if (k == 1) {
    *bad_plane = 0;
    return decode_frame(frames[0].kind, src, frames[0].size, out, n, what);
  }
  if (planes_.size() < len) planes_.resize(len);
  const uint8_t* plane_at[4];
  uint64_t at = 0;
  for (unsigned p = 0; p < k; ++p) {
    const EncodedFrame& f = frames[p];
    *bad_plane = p;
    if (f.kind == FrameKind::kStored) {
      if (f.size != n) {
        *what = "a stored frame's size differs from its declared length";
        return FrameError::kWrongLength;
      }
      plane_at[p] = src + at;
    } else {
      uint8_t* dst = planes_.data() + p * n;
      if (FrameError e = decode_frame(f.kind, src + at, f.size, dst, n, what); e != FrameError::kNone) return e;
      plane_at[p] = dst;
    }
    at += f.size;
  }
  merge_planes(plane_at, n, k, out);
  return FrameError::kNone;
}

}  // namespace ckpt
