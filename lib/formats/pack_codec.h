// The packed container's codec: a tensor's bytes split into byte planes by dtype, each plane cut
// into independent zstd frames, each frame stored as the smaller of its zstd form and its raw
// bytes.
//
// Why planes: in bf16/f16/f32 the sign and exponent bits carry ~2.6-2.7 bits of entropy while the
// mantissa is close to noise, so an entropy coder given the high bytes alone shrinks them to about
// a third, where the same coder on interleaved bytes sees a mix and gains little (ZipNN,
// arXiv 2411.05239, "ZipNN: Lossless Compression for AI Models", §3 byte grouping).
//
// The unit of coding is a group: kPackGroupBytes (1 MiB) of a region's original bytes (the last
// group of a region shorter). A group of a k-plane region is k frames of group_len / k bytes each,
// frame p holding byte p of every element. Why 1 MiB:
//  - ratio: zstd codes literals with Huffman tables rebuilt per block of at most 128 KiB
//    (ZSTD_BLOCKSIZE_MAX, facebook/zstd lib/zstd.h), and weights have no long matches, so frames
//    longer than a few blocks gain nothing measurable (BENCHMARKS.md has the figures);
//  - random access and parallelism: any 1 MiB of a tensor decodes alone, and a 2 GB checkpoint has
//    ~2000 independent groups for any number of threads;
//  - it is the executor's hash block (core/hash.h): a group's digest is the block digest the
//    manifest's tensor digests are built from, and a chunk request of the executor decodes
//    exactly the groups it covers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/hash.h"
#include "formats/zstd_literals.h"

namespace ckpt {

inline constexpr uint64_t kPackGroupBytes = kHashBlockBytes;

// Planes of a dtype: 2 for BF16/F16, 4 for F32; 1 (bytes as they are) for every other dtype —
// FP8 codes, integers and packed sub-byte values have no byte whose entropy stands apart.
unsigned pack_plane_count(DType t);

// Splits n elements of k bytes each (k in {1, 2, 4}) into k planes: plane p (n bytes, at
// planes + p*n) holds byte p of every element. The reference is the plain loop; the other uses
// SSE2 (AVX2 for 2 planes where the CPU has it) and must give the same bytes
// (tests/unit/test_pack_codec.cpp).
void split_planes_reference(const uint8_t* in, uint64_t n, unsigned k, uint8_t* planes);
void split_planes(const uint8_t* in, uint64_t n, unsigned k, uint8_t* planes);
// The same with plane p written at planes[p] (the 2-plane split uses AVX2 where the CPU has it).
void split_planes_to(const uint8_t* in, uint64_t n, unsigned k, uint8_t* const* planes);
// The inverse: k planes of n bytes each (plane p at planes[p], anywhere: a stored frame is merged
// straight from the bytes read) back into n interleaved elements (2 planes: AVX2 where the CPU
// has it).
void merge_planes_reference(const uint8_t* const* planes, uint64_t n, unsigned k, uint8_t* out);
void merge_planes(const uint8_t* const* planes, uint64_t n, unsigned k, uint8_t* out);

// How a frame's bytes are stored.
enum class FrameKind : uint32_t { kStored = 0, kZstd = 1 };

struct EncodedFrame {
  FrameKind kind = FrameKind::kStored;
  uint32_t size = 0;  // bytes in the container
};

// The zstd parameters of every frame: the level, and at level 1 a hash table of 2^8 entries
// instead of the level's 2^14. Weight planes have few long matches; with the small table zstd
// stops chasing short ones and hands the bytes to its Huffman literal coder, which is where the
// exponent plane's gain is: measured on 512 KiB exponent planes, 2.7x faster to encode, 1.7x
// faster to decode, and smaller (BENCHMARKS.md, "pack / unpack"). ZSTD_c_hashLog is stable API.
inline constexpr int kPackLevel1HashLog = 8;

// The exponent plane (the last plane of a 2- or 4-plane dtype: the bf16/f16 high byte, the f32
// top byte) at level 1 is not given to libzstd: its gain is order-0 (Huffman literals), and
// libzstd's match search and per-block literal coder ran at ~0.9-1.0 GB/s a core on it, most of
// pack's CPU. pack's own writer of standard zstd frames of Huffman literals (zstd_literals.h: one
// table per frame, two symbols per lookup, four streams coded two at a time) codes it instead,
// decoded by libzstd as any zstd frame. Measured on 512 KiB planes, one core of the 2-core dev VM
// (BENCHMARKS.md, "The exponent plane through ckpt's own zstd frame writer"): 1558 MB/s against
// libzstd's 860 on make_synthetic's planes at the same ratio (2.985 vs 2.983); pack's user CPU on
// the 22-layer synthetic 1.94 -> 1.12 s, pack 2.4x -> 1.4x cp. Planes that look repetitive
// (LiteralsFrameEncoder::repeated_bytes: a trained model's untouched embedding rows, zero runs)
// still go to libzstd at level 1, whose matches find them.
inline constexpr bool kPackExponentLiterals = true;

// Noise planes: before compressing a plane of at least kPackSampleMinBytes, zstd is tried on a
// sample of it (kPackSampleSlices slices of kPackSampleSliceBytes spread evenly, 16 KiB in all);
// when the sample does not shrink by at least 1/kPackSampleGainDivisor (~1.6%), the plane is stored
// raw without running zstd on the rest. That is the bf16/f16 low byte and the f32 low mantissa
// bytes of a trained model: noise, where zstd spends as much time as on the exponent plane to
// find nothing. The decision depends on the bytes alone, so packing stays deterministic.
inline constexpr uint64_t kPackSampleMinBytes = 64 * 1024;
inline constexpr unsigned kPackSampleSlices = 4;
inline constexpr uint64_t kPackSampleSliceBytes = 4 * 1024;
inline constexpr uint64_t kPackSampleGainDivisor = 64;

// The sample's order-0 entropy decides first: at most kPackSampleSureBits bits per byte means a
// Huffman code of under 7 bits a byte (a Huffman code is within 1 bit of the entropy), a gain of
// over 1/8 where the sample needs 1/64, so zstd on the sample would say "compress" too and is not
// run (it cost ~50 us per exponent plane, ~5 % of pack's CPU). Only planes above that (noise, or
// bytes whose gain comes from repeats, such as trained embedding rows) are sampled with zstd, so
// every plane is stored or compressed exactly as the zstd sample alone decides.
inline constexpr double kPackSampleSureBits = 6.0;
// Order-0 entropy, in bits per byte, of the sample of a plane of n >= kPackSampleMinBytes bytes
// (the slices zstd would be tried on).
double pack_sample_entropy(const uint8_t* plane, uint64_t n);

// Per-thread compression state (zstd contexts and plane scratch), reused across groups.
class GroupEncoder {
 public:
  explicit GroupEncoder(int level);
  ~GroupEncoder();
  GroupEncoder(const GroupEncoder&) = delete;
  GroupEncoder& operator=(const GroupEncoder&) = delete;
  // The most bytes encode() writes for a group of `len` bytes in k planes.
  static uint64_t bound(uint64_t len, unsigned k);
  // Encodes one group of `len` bytes (a multiple of k, at most kPackGroupBytes) into k frames
  // written back to back at out (bound(len, k) bytes available) in plane order; frames[p]
  // describes frame p. Returns the bytes written.
  uint64_t encode(const uint8_t* data, uint64_t len, unsigned k, uint8_t* out, std::span<EncodedFrame> frames);
  // Whether zstd is run on a plane of n bytes (see kPackSampleMinBytes): the entropy check, then
  // the zstd sample when that is not sure.
  bool worth_compressing(const uint8_t* plane, uint64_t n);
  // The reference decision: zstd on the sample alone (n >= kPackSampleMinBytes).
  bool sample_gains(const uint8_t* plane, uint64_t n);

 private:
  // One plane as one zstd frame at out (bound's room): the exponent plane at level 1 through
  // literals_ unless it looks repetitive, everything else through libzstd. Returns its size.
  size_t compress_plane(const uint8_t* src, uint64_t n, bool exponent, uint8_t* out);

  int level_;
  void* cctx_;                     // every plane at levels above 1, the rest at level 1, the samples
  LiteralsFrameEncoder literals_;  // the exponent plane at level 1
  std::vector<uint8_t> planes_, sample_, sample_out_;
};

// Why a frame could not be decoded (the caller names file, tensor and frame).
enum class FrameError { kNone, kCorrupt, kWrongLength };

// Per-thread decompression state.
class GroupDecoder {
 public:
  GroupDecoder();
  ~GroupDecoder();
  GroupDecoder(const GroupDecoder&) = delete;
  GroupDecoder& operator=(const GroupDecoder&) = delete;
  // Decodes one frame of `kind` from src (src_len bytes) into exactly `out_len` bytes at out.
  // Decompression never writes past out_len: a frame that would expand further, or that ends
  // early, or that carries trailing bytes, is an error and `what` says which.
  FrameError decode_frame(FrameKind kind, const uint8_t* src, uint64_t src_len, uint8_t* out,
                          uint64_t out_len, const char** what);
  // Decodes a group of `len` bytes in k planes from its frames, back to back at src as encode()
  // wrote them, into out. Stored planes are merged straight from src. On failure returns the
  // error with the failing plane in *bad_plane and the reason in *what; out is then undefined.
  FrameError decode_group(const uint8_t* src, std::span<const EncodedFrame> frames, uint64_t len, uint8_t* out,
                          unsigned* bad_plane, const char** what);

 private:
  void* dctx_;
  std::vector<uint8_t> planes_;
};

}  // namespace ckpt
