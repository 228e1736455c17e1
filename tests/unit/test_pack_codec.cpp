// The packed container's codec: the SSE2 plane split/merge against the scalar reference on every
// length around the vector width, group encode/decode round trips, the stored-or-compressed
// decision (the entropy check against the zstd sample), and the decoder's refusals
// (a frame that would decode past its declared length, a short one, trailing bytes, junk).
#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
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
      const uint8_t* planes[4];
      for (unsigned p = 0; p < k; ++p) planes[p] = ref.data() + p * n;
      merge_planes_reference(planes, n, k, back_ref.data());
      merge_planes(planes, n, k, back_fast.data());
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

// Encodes a group; returns its bytes (frames back to back) and fills `frames`.
std::vector<uint8_t> encode_group(GroupEncoder& enc, const std::vector<uint8_t>& data, unsigned k,
                                  std::vector<EncodedFrame>& frames) {
  std::vector<uint8_t> out(GroupEncoder::bound(data.size(), k));
  frames.assign(k, {});
  out.resize(enc.encode(data.data(), data.size(), k, out.data(), frames));
  return out;
}

TEST(PackCodec, GroupRoundTripCompressesTheExponentPlane) {
  for (int level : {1, 3}) {
    GroupEncoder enc(level);
    GroupDecoder dec;
    for (unsigned k : {1u, 2u, 4u}) {
      for (uint64_t len : {uint64_t{0}, uint64_t{4 * 3}, uint64_t{4 * 1000}, uint64_t{4 * 40000}, kPackGroupBytes}) {
        auto data = weight_like(len / k, k, static_cast<uint32_t>(len + k));
        std::vector<EncodedFrame> frames;
        auto out = encode_group(enc, data, k, frames);
        uint64_t total = 0;
        for (auto& f : frames) total += f.size;
        ASSERT_EQ(total, out.size());
        std::vector<uint8_t> back(len + 1, 0xEE);
        unsigned bad = 9;
        const char* what = "";
        ASSERT_EQ(dec.decode_group(out.data(), frames, len, back.data(), &bad, &what), FrameError::kNone) << what;
        ASSERT_TRUE(std::equal(data.begin(), data.end(), back.begin())) << "level " << level << " k " << k << " len " << len;
        ASSERT_EQ(back[len], 0xEE);  // nothing past the group
        if (len >= 4 * 40000 && k > 1) {
          EXPECT_EQ(frames[k - 1].kind, FrameKind::kZstd);  // the exponent plane shrinks
          EXPECT_LT(frames[k - 1].size, len / k / 2);
          EXPECT_EQ(frames[0].kind, FrameKind::kStored);    // the low mantissa byte does not
        }
      }
    }
  }
}

// The noise-plane sample decides by the bytes alone: a plane that is noise except in one of the
// sampled slices is still compressed when the sample gains; a plane of noise whose unsampled
// bytes compress is stored (the sample's verdict, deterministic); a plane of noise is stored and
// a plane of repeated rows is compressed.
TEST(PackCodec, NoisePlaneSampleDecides) {
  GroupEncoder enc(1);
  const uint64_t n = kPackGroupBytes / 2;
  auto noise = random_bytes(n, 3);
  std::vector<EncodedFrame> frames;
  encode_group(enc, noise, 1, frames);
  EXPECT_EQ(frames[0].kind, FrameKind::kStored);
  std::vector<uint8_t> rows(n);
  auto row = random_bytes(512, 4);
  for (uint64_t i = 0; i < n; ++i) rows[i] = row[i % 512];
  encode_group(enc, rows, 1, frames);
  EXPECT_EQ(frames[0].kind, FrameKind::kZstd);  // every byte is order-0 noise, but it repeats
  // Zeros between the sampled slices (at 0, 1/3, 2/3 and the end): the sample sees noise only.
  std::vector<uint8_t> holes = noise;
  std::fill(holes.begin() + 8192, holes.begin() + n / 3 - 8192, 0);
  auto out = encode_group(enc, holes, 1, frames);
  EXPECT_EQ(frames[0].kind, FrameKind::kStored);
  // Below the sampling size, zstd itself decides.
  std::vector<uint8_t> small(kPackSampleMinBytes - 1, 0);
  encode_group(enc, small, 1, frames);
  EXPECT_EQ(frames[0].kind, FrameKind::kZstd);
}

// The entropy check in front of the zstd sample is a shortcut only: wherever it says "compress"
// without running zstd, the zstd sample (the reference) says so too, so every plane is stored or
// compressed as the sample alone decides. Planes from all-equal through skewed and uniform
// alphabets to noise, with both outcomes of the check represented.
TEST(PackCodec, EntropyCheckAgreesWithTheZstdSample) {
  GroupEncoder enc(1);
  const uint64_t n = kPackGroupBytes / 2;
  std::vector<std::vector<uint8_t>> planes;
  for (unsigned bits = 0; bits <= 8; ++bits) {  // uniform over 2^bits values: exactly `bits` bits
    std::mt19937 rng(bits);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
    planes.push_back(std::move(v));
  }
  for (unsigned m : {65u, 70u, 90u, 100u, 128u, 200u}) {  // uniform over m values: log2(m) bits, around the threshold
    std::mt19937 rng(m);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng() % m);
    planes.push_back(std::move(v));
  }
  for (double p : {0.02, 0.05, 0.1, 0.3, 0.6}) {  // geometric: skewed, with a long tail
    std::mt19937 rng(static_cast<uint32_t>(p * 1000));
    std::geometric_distribution<int> g(p);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(std::min(g(rng), 255));
    planes.push_back(std::move(v));
  }
  for (unsigned k : {2u, 4u}) {  // the planes of weights: exponent and mantissa bytes
    auto w = weight_like(n, k, 11 + k);
    std::vector<uint8_t> split(w.size());
    split_planes(w.data(), n, k, split.data());
    for (unsigned p = 0; p < k; ++p) planes.emplace_back(split.begin() + p * n, split.begin() + (p + 1) * n);
  }
  unsigned sure = 0, sampled = 0;
  for (size_t i = 0; i < planes.size(); ++i) {
    const auto& v = planes[i];
    const double h = pack_sample_entropy(v.data(), n);
    const bool reference = enc.sample_gains(v.data(), n);
    if (h <= kPackSampleSureBits) {
      ++sure;
      EXPECT_TRUE(reference) << "plane " << i << ": entropy " << h << " yet the zstd sample does not gain";
    } else {
      ++sampled;
    }
    EXPECT_EQ(enc.worth_compressing(v.data(), n), reference) << "plane " << i << ", entropy " << h;
  }
  EXPECT_GE(sure, 8u);
  EXPECT_GE(sampled, 8u);
}

// pack_sample_entropy against the entropy of the sample slices computed directly.
TEST(PackCodec, SampleEntropyIsTheOrder0EntropyOfTheSlices) {
  const uint64_t n = 3 * kPackSampleMinBytes + 5;
  std::vector<uint8_t> v(n, 7);
  EXPECT_EQ(pack_sample_entropy(v.data(), n), 0.0);
  std::mt19937 rng(5);
  for (auto& b : v) b = static_cast<uint8_t>(rng() % 37);
  std::vector<uint64_t> hist(256, 0);
  for (unsigned s = 0; s < kPackSampleSlices; ++s) {
    const uint64_t at = (n - kPackSampleSliceBytes) * s / (kPackSampleSlices - 1);
    for (uint64_t i = 0; i < kPackSampleSliceBytes; ++i) ++hist[v[at + i]];
  }
  const double total = kPackSampleSlices * kPackSampleSliceBytes;
  double h = 0;
  for (uint64_t c : hist)
    if (c) h -= c / total * std::log2(c / total);
  EXPECT_NEAR(pack_sample_entropy(v.data(), n), h, 1e-9);
  // Bytes outside the slices do not count.
  v[kPackSampleSliceBytes + 1] = 255;
  EXPECT_NEAR(pack_sample_entropy(v.data(), n), h, 1e-9);
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
  std::vector<EncodedFrame> fa, fb, fc;
  GroupEncoder e1(1), e2(1);
  auto a = encode_group(e1, data, 2, fa);
  auto b = encode_group(e1, data, 2, fb);  // a reused context
  auto c = encode_group(e2, data, 2, fc);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

TEST(PackCodec, DecodeGroupNamesTheFailingPlane) {
  GroupEncoder enc(1);
  GroupDecoder dec;
  auto data = weight_like(kPackGroupBytes / 2, 2, 6);
  std::vector<EncodedFrame> frames;
  auto out = encode_group(enc, data, 2, frames);
  ASSERT_EQ(frames[1].kind, FrameKind::kZstd);
  std::vector<uint8_t> back(data.size());
  unsigned bad = 9;
  const char* what = "";
  auto broken = out;
  broken[frames[0].size + 2] ^= 0xFF;  // the zstd frame header of plane 1
  EXPECT_NE(dec.decode_group(broken.data(), frames, data.size(), back.data(), &bad, &what), FrameError::kNone);
  EXPECT_EQ(bad, 1u);
  auto short_stored = frames;
  short_stored[0].size -= 1;
  EXPECT_EQ(dec.decode_group(out.data(), short_stored, data.size(), back.data(), &bad, &what), FrameError::kWrongLength);
  EXPECT_EQ(bad, 0u);
}

}  // namespace
