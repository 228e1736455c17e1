// The Huffman-literals zstd frame writer (lib/formats/zstd_literals.h) against libzstd as the
// reference decoder: every frame written is decoded by ZSTD_decompress and compared byte for byte
// (random, skewed, single-value, all-256-values, exponent-like planes; tiny and odd sizes; sizes
// around the 128 KiB block boundary), the code lengths are checked to be a complete prefix code
// within the limit, and the tree descriptions of both forms (FSE and direct) are decoded by
// libzstd through frames that need them.
#include <gtest/gtest.h>
#include <zstd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "formats/zstd_literals.h"

namespace {

using namespace ckpt;

// Encodes, checks the frame against libzstd (one frame, the declared content size, the bytes).
size_t round_trip(LiteralsFrameEncoder& enc, const std::vector<uint8_t>& in, const char* what) {
  std::vector<uint8_t> frame(LiteralsFrameEncoder::bound(in.size()));
  const size_t size = enc.encode(in.data(), in.size(), frame.data());
  EXPECT_LE(size, frame.size()) << what;
  frame.resize(size);
  EXPECT_EQ(ZSTD_findFrameCompressedSize(frame.data(), frame.size()), size) << what;
  EXPECT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), in.size()) << what;
  std::vector<uint8_t> out(in.size() + 1, 0xEE);
  const size_t r = ZSTD_decompress(out.data(), in.size(), frame.data(), frame.size());
  EXPECT_FALSE(ZSTD_isError(r)) << what << " n=" << in.size() << ": " << (ZSTD_isError(r) ? ZSTD_getErrorName(r) : "");
  EXPECT_EQ(r, in.size()) << what;
  out.resize(in.size());
  EXPECT_TRUE(out == in) << what << " n=" << in.size();
  return size;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed, unsigned alphabet = 256) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() % alphabet);
  return v;
}

// bf16 high bytes of normal values of std 0.02: sign + exponent, ~2.7 bits of entropy, both
// signs (bytes above 128, so the tree needs the FSE form).
std::vector<uint8_t> exponent_plane(size_t n, uint32_t seed, float std = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, std);
  std::vector<uint8_t> v(n);
  for (auto& b : v) {
    const float f = nd(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    b = static_cast<uint8_t>(bits >> 24);
  }
  return v;
}

// Geometric: byte k with probability ~2^-(k+1), deep codes that need the 11-bit limit.
std::vector<uint8_t> geometric(size_t n, uint32_t seed, unsigned offset = 0) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) {
    unsigned k = 0;
    while (k < 40 && (rng() & 1)) ++k;
    b = static_cast<uint8_t>(k + offset);
  }
  return v;
}

TEST(ZstdLiterals, CodeLengthsAreCompleteAndLimited) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    uint32_t counts[256] = {};
    const unsigned used = 2 + rng() % 255;
    for (unsigned i = 0; i < used; ++i) {
      const unsigned s = rng() % 256;
      // Skewed magnitudes (up to 2^30) so that plain Huffman trees get deeper than 11.
      counts[s] = 1 + (trial % 3 == 0 ? rng() % 100 : (1u << (rng() % 31)) + rng() % 7);
    }
    uint8_t lengths[256];
    huffman_code_lengths(counts, kLiteralsMaxCodeBits, lengths);
    uint64_t kraft = 0;
    for (unsigned s = 0; s < 256; ++s) {
      ASSERT_EQ(lengths[s] != 0, counts[s] != 0) << s;
      ASSERT_LE(lengths[s], kLiteralsMaxCodeBits);
      if (lengths[s]) kraft += 1ull << (kLiteralsMaxCodeBits - lengths[s]);
    }
    ASSERT_EQ(kraft, 1ull << kLiteralsMaxCodeBits) << "trial " << trial;
    // A more frequent byte never gets a longer code.
    for (unsigned a = 0; a < 256; ++a)
      for (unsigned b = 0; b < 256; ++b)
        if (counts[a] && counts[b] && counts[a] > counts[b]) {
          ASSERT_LE(lengths[a], lengths[b]);
        }
  }
}

TEST(ZstdLiterals, CodeLengthsOfTwoSymbolsAreOneBit) {
  uint32_t counts[256] = {};
  counts[3] = 1000;
  counts[200] = 1;
  uint8_t lengths[256];
  huffman_code_lengths(counts, kLiteralsMaxCodeBits, lengths);
  EXPECT_EQ(lengths[3], 1);
  EXPECT_EQ(lengths[200], 1);
}

TEST(ZstdLiterals, ExponentPlanesDecodeWithLibzstd) {
  LiteralsFrameEncoder enc;
  for (size_t n : {size_t{512} << 10, size_t{128} << 10, size_t{100000}, size_t{300001}}) {
    auto in = exponent_plane(n, static_cast<uint32_t>(n));
    const size_t size = round_trip(enc, in, "exponent");
    EXPECT_LT(size, n * 45 / 100) << "an exponent plane should shrink to under 45%";
  }
}

TEST(ZstdLiterals, SizesAroundBlocksAndTinyOnesDecode) {
  LiteralsFrameEncoder enc;
  const size_t B = kZstdMaxBlockBytes;
  std::vector<size_t> sizes = {0, 1, 2, 3, 5, 6, 7, 8, 9, 13, 31, 63, 64, 65, 100, 255, 256, 257, 1023, 1024, 1025,
                               4095, 65535, 65536, 65791, 65792, 65793, B - 1, B, B + 1, B + 5, B + 63, B + 64,
                               2 * B - 1, 2 * B, 2 * B + 7, 4 * B - 3, 4 * B, 4 * B + 1};
  for (size_t n : sizes) {
    round_trip(enc, exponent_plane(n, static_cast<uint32_t>(n) + 1), "exponent");
    round_trip(enc, geometric(n, static_cast<uint32_t>(n) + 2), "geometric");
    round_trip(enc, random_bytes(n, static_cast<uint32_t>(n) + 3, 5), "five values");
  }
}

TEST(ZstdLiterals, SkewedSingleAndFullAlphabetsDecode) {
  LiteralsFrameEncoder enc;
  for (size_t n : {size_t{1000}, size_t{200000}, size_t{524288}}) {
    round_trip(enc, std::vector<uint8_t>(n, 0x3c), "one value");
    round_trip(enc, std::vector<uint8_t>(n, 0), "zeros");
    round_trip(enc, random_bytes(n, 11), "all 256 values, uniform");
    round_trip(enc, random_bytes(n, 12, 2), "two values");
    round_trip(enc, geometric(n, 13), "geometric from 0");
    round_trip(enc, geometric(n, 14, 200), "geometric from 200");
    round_trip(enc, geometric(n, 15, 100), "geometric across 128");
    auto mostly = std::vector<uint8_t>(n, 0x41);
    mostly[n / 2] = 0xff;  // one rare byte at the top of the alphabet
    mostly[n - 1] = 0x00;
    round_trip(enc, mostly, "one value and two rare ones");
    auto all = random_bytes(n, 16, 4);
    for (unsigned b = 0; b < 256; ++b) all[b * 3] = static_cast<uint8_t>(b);  // every byte once, rest 4 values
    round_trip(enc, all, "every byte present, skewed");
  }
}

TEST(ZstdLiterals, BothTreeDescriptionFormsDecode) {
  // Bytes below 128 only: the direct 4-bit form is possible and usually the smaller for few
  // weights; exponent planes with both signs need the FSE form. Both through libzstd.
  uint8_t lengths[256] = {};
  lengths[0] = 1;
  lengths[1] = 2;
  lengths[2] = 3;
  lengths[3] = 3;
  uint8_t desc[160];
  ASSERT_EQ(write_huffman_tree_description(lengths, desc), 3u);  // 3 weights, 4 bits each
  EXPECT_EQ(desc[0], 127 + 3);
  EXPECT_EQ(desc[1], 3 << 4 | 2);  // weights 3, 2, 1 (the last byte's 1 implied)
  EXPECT_EQ(desc[2], 1 << 4);
  uint32_t counts[256];
  auto plane = exponent_plane(100000, 8);
  byte_counts_reference(plane.data(), plane.size(), counts);
  huffman_code_lengths(counts, kLiteralsMaxCodeBits, lengths);
  const size_t d = write_huffman_tree_description(lengths, desc);
  ASSERT_GT(d, 0u);
  EXPECT_LT(desc[0], 128) << "bytes above 128: the FSE form";
  EXPECT_EQ(desc[0] + 1u, d);
  LiteralsFrameEncoder enc;
  std::mt19937 rng(3);
  std::vector<uint8_t> in(5000);
  for (auto& b : in) {
    const unsigned r = rng() % 8;
    b = r < 4 ? 0 : r < 6 ? 1 : r < 7 ? 2 : 3;
  }
  round_trip(enc, in, "direct form");
  round_trip(enc, exponent_plane(5000, 4), "FSE form");
  for (uint32_t seed = 0; seed < 200; ++seed) {
    // Random small alphabets anywhere in 0..255 with random skew: both forms, many weight mixes.
    std::mt19937 r2(seed);
    const unsigned k = 2 + r2() % 40;
    std::vector<uint8_t> symbols(k);
    for (auto& s : symbols) s = static_cast<uint8_t>(r2() % 256);
    std::vector<uint8_t> v(3000 + r2() % 3000);
    for (auto& b : v) {
      unsigned i = 0;
      while (i + 1 < k && r2() % 3 != 0) ++i;
      b = symbols[i];
    }
    round_trip(enc, v, "random alphabet");
  }
}

TEST(ZstdLiterals, ByteCountsEqualTheReference) {
  // Vector and scalar counting against the plain loop: skewed (the vector path's chosen bytes
  // cover almost all), uniform (most bytes fall to the scalar tables), a distribution that
  // changes after the head the vector path chooses from, and sizes around its 32-byte steps.
  LiteralsFrameEncoder enc;
  std::vector<std::vector<uint8_t>> inputs = {exponent_plane(300000, 1), random_bytes(100000, 2), geometric(70000, 3)};
  auto shifted = exponent_plane(200000, 4);
  for (size_t i = 8192; i < shifted.size(); ++i) shifted[i] = static_cast<uint8_t>(shifted[i] + 7);
  inputs.push_back(shifted);
  for (size_t n : {0, 1, 31, 32, 33, 4095, 4096, 4097, 4127, 4128, 4129, 8191 + 255 * 32})
    inputs.push_back(exponent_plane(n, static_cast<uint32_t>(n)));
  inputs.push_back(std::vector<uint8_t>(255 * 32 * 3 + 4096, 0x3c));  // counters folded before they wrap
  for (const auto& in : inputs) {
    uint32_t ref[256], fast[256], scalar[256];
    byte_counts_reference(in.data(), in.size(), ref);
    enc.byte_counts(in.data(), in.size(), fast);
    enc.byte_counts(in.data(), in.size(), scalar, /*vector=*/false);
    for (unsigned b = 0; b < 256; ++b) {
      ASSERT_EQ(fast[b], ref[b]) << "byte " << b << " n=" << in.size();
      ASSERT_EQ(scalar[b], ref[b]) << "byte " << b << " n=" << in.size();
    }
  }
}

TEST(ZstdLiterals, RepetitiveBytesAreRefusedWhenAsked) {
  // Rows of 256 bytes repeated: libzstd's matches would code them far smaller than literals can.
  LiteralsFrameEncoder enc;
  auto row = exponent_plane(256, 5);
  std::vector<uint8_t> rows;
  for (int i = 0; i < 1024; ++i) rows.insert(rows.end(), row.begin(), row.end());
  std::vector<uint8_t> frame(LiteralsFrameEncoder::bound(rows.size()));
  EXPECT_EQ(enc.encode(rows.data(), rows.size(), frame.data(), /*refuse_repeats=*/true), 0u);
  EXPECT_GT(enc.repeated_bytes(), rows.size() / 2);
  round_trip(enc, rows, "repeated rows, not refused");
  auto plane = exponent_plane(rows.size(), 6);
  EXPECT_GT(enc.encode(plane.data(), plane.size(), frame.data(), /*refuse_repeats=*/true), 0u);
  EXPECT_LT(enc.repeated_bytes() * kLiteralsRepeatShare, plane.size()) << "an exponent plane is not repetitive";
  std::vector<uint8_t> zeros(200000, 0);
  EXPECT_EQ(enc.encode(zeros.data(), zeros.size(), frame.data(), /*refuse_repeats=*/true), 0u);
}

TEST(ZstdLiterals, OutputIsDeterministic) {
  LiteralsFrameEncoder a, b;
  auto in = exponent_plane(300000, 9);
  std::vector<uint8_t> fa(LiteralsFrameEncoder::bound(in.size())), fb(fa.size());
  // b first codes something else, so stale table entries would show.
  std::vector<uint8_t> other = geometric(200000, 1, 30), fo(LiteralsFrameEncoder::bound(other.size()));
  b.encode(other.data(), other.size(), fo.data());
  const size_t sa = a.encode(in.data(), in.size(), fa.data());
  const size_t sb = b.encode(in.data(), in.size(), fb.data());
  ASSERT_EQ(sa, sb);
  EXPECT_EQ(0, std::memcmp(fa.data(), fb.data(), sa));
}

}  // namespace
