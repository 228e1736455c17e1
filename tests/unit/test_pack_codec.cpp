// The packed container's codec: the SSE2 plane split/merge against the scalar reference on every
// length around the vector width, group encode/decode round trips, and the decoder's refusals
// (a frame that would decode past its declared length, a short one, trailing bytes, junk).
#include <gtest/gtest.h>
#include <zstd.h>

#include <cstring>
#include <random>
#include <vector>

#include "formats/pack_codec.h"

namespace {

using namespace ckpt;

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(PackCodec, PlaneCountsByDtype) {
  EXPECT_EQ(pack_plane_count(DType::BF16), 2u);
  EXPECT_EQ(pack_plane_count(DType::F16), 2u);
  EXPECT_EQ(pack_plane_count(DType::F32), 4u);
  for (DType t : {DType::F8_E4M3, DType::F8_E5M2, DType::I64, DType::I32, DType::U8, DType::F4, DType::BOOL, DType::F64})
    EXPECT_EQ(pack_plane_count(t), 1u) << dtype_name(t);
}

TEST(PackCodec, FastSplitAndMergeEqualTheReference) {
  for (unsigned k : {1u, 2u, 4u}) {
    for (uint64_t n : {0ull, 1ull, 15ull, 16ull, 17ull, 31ull, 32ull, 33ull, 63ull, 64ull, 100ull, 4099ull}) {
      auto in = random_bytes(n * k, static_cast<uint32_t>(n * 7 + k));
      std::vector<uint8_t> ref(n * k + 1, 0xAA), fast(n * k + 1, 0xAA);
      split_planes_reference(in.data(), n, k, ref.data());
      split_planes(in.data(), n, k, fast.data());
      ASSERT_EQ(ref, fast) << "split k=" << k << " n=" << n;
      for (uint64_t i = 0; i < n; ++i)
        for (unsigned p = 0; p < k; ++p) ASSERT_EQ(ref[p * n + i], in[i * k + p]);
      std::vector<uint8_t> back_ref(n * k + 1, 0x55), back_fast(n * k + 1, 0x55);
      merge_planes_reference(ref.data(), n, k, back_ref.data());
      merge_planes(ref.data(), n, k, back_fast.data());
      ASSERT_EQ(back_ref, back_fast) << "merge k=" << k << " n=" << n;
      ASSERT_TRUE(std::equal(in.begin(), in.end(), back_fast.begin()));
    }
  }
}

// bf16-like values: the high byte (sign + exponent) takes few values, the low byte is noise.
std::vector<uint8_t> weight_like(size_t elems, unsigned k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::vector<uint8_t> v(elems * k);
  for (size_t i = 0; i < elems; ++i) {
    float f = nd(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if (k == 2) bits >>= 16;
    std::memcpy(&v[i * k], &bits, k);
  }
  return v;
}

TEST(PackCodec, GroupRoundTripCompressesTheExponentPlane) {
  GroupEncoder enc(3);
  GroupDecoder dec;
  for (unsigned k : {1u, 2u, 4u}) {
    for (uint64_t len : {uint64_t{0}, uint64_t{4 * 3}, uint64_t{4 * 1000}, kPackGroupBytes}) {
      auto data = weight_like(len / k, k, static_cast<uint32_t>(len + k));
      std::vector<uint8_t> out;
      std::vector<EncodedFrame> frames(k);
      enc.encode(data.data(), len, k, out, frames);
      uint64_t total = 0;
      for (auto& f : frames) total += f.size;
      ASSERT_EQ(total, out.size());
      std::vector<uint8_t> back(len);
      uint8_t* planes = dec.scratch(len);
      uint64_t at = 0;
      for (unsigned p = 0; p < k; ++p) {
        const char* what = "";
        ASSERT_EQ(dec.decode_frame(frames[p].kind, out.data() + at, frames[p].size, planes + p * (len / k), len / k, &what),
                  FrameError::kNone) << what;
        at += frames[p].size;
      }
      merge_planes(planes, len / k, k, back.data());
      ASSERT_EQ(back, data);
      if (len == kPackGroupBytes && k > 1) {
        EXPECT_EQ(frames[k - 1].kind, FrameKind::kZstd);  // the exponent plane shrinks
        EXPECT_LT(frames[k - 1].size, len / k / 2);
        EXPECT_EQ(frames[0].kind, FrameKind::kStored);    // the low mantissa byte does not
      }
    }
  }
}

TEST(PackCodec, DecoderRefusesFramesThatDoNotMatchTheirDeclaredLength) {
  std::vector<uint8_t> zeros(1 << 16, 0);
  std::vector<uint8_t> z(ZSTD_compressBound(zeros.size()));
  z.resize(ZSTD_compress(z.data(), z.size(), zeros.data(), zeros.size(), 3));
  GroupDecoder dec;
  std::vector<uint8_t> out(zeros.size() * 2);
  const char* what = "";
  EXPECT_EQ(dec.decode_frame(FrameKind::kZstd, z.data(), z.size(), out.data(), zeros.size(), &what), FrameError::kNone);
  // Declared shorter than the frame's content (a zip bomb in miniature): refused, nothing past it.
  std::fill(out.begin(), out.end(), 0xEE);
  EXPECT_EQ(dec.decode_frame(FrameKind::kZstd, z.data(), z.size(), out.data(), 100, &what), FrameError::kWrongLength);
  for (size_t i = 100; i < out.size(); ++i) ASSERT_EQ(out[i], 0xEE);
  EXPECT_EQ(dec.decode_frame(FrameKind::kZstd, z.data(), z.size(), out.data(), zeros.size() + 1, &what), FrameError::kWrongLength);
  // Truncated, or with bytes after the frame (a second frame).
  EXPECT_EQ(dec.decode_frame(FrameKind::kZstd, z.data(), z.size() - 1, out.data(), zeros.size(), &what), FrameError::kCorrupt);
  std::vector<uint8_t> two = z;
  two.insert(two.end(), z.begin(), z.end());
  EXPECT_EQ(dec.decode_frame(FrameKind::kZstd, two.data(), two.size(), out.data(), zeros.size(), &what), FrameError::kCorrupt);
  auto junk = random_bytes(64, 9);
  EXPECT_EQ(dec.decode_frame(FrameKind::kZstd, junk.data(), junk.size(), out.data(), 1000, &what), FrameError::kCorrupt);
  EXPECT_EQ(dec.decode_frame(FrameKind::kStored, junk.data(), junk.size(), out.data(), 63, &what), FrameError::kWrongLength);
}

TEST(PackCodec, EncodingIsDeterministic) {
  auto data = weight_like(kPackGroupBytes / 2, 2, 5);
  std::vector<uint8_t> a, b;
  std::vector<EncodedFrame> fa(2), fb(2);
  GroupEncoder e1(3), e2(3);
  e1.encode(data.data(), data.size(), 2, a, fa);
  e1.encode(data.data(), data.size(), 2, b, fb);  // a reused context
  std::vector<uint8_t> c;
  e2.encode(data.data(), data.size(), 2, c, fb);
  EXPECT_EQ(a, std::vector<uint8_t>(b.begin(), b.begin() + a.size()));
  EXPECT_EQ(a, c);
}

}  // namespace
