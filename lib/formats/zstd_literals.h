// A writer of standard zstd frames (RFC 8878, "Zstandard Compression and the application/zstd
// Media Type") that code every byte as a Huffman literal: no match search at all.
//
// Why: pack's exponent plane (the bf16/f16 high byte, the f32 top byte) gains only from order-0
// coding, so everything libzstd does besides its Huffman literal coder is time spent finding
// nothing, and its literal coder itself rebuilds a table per 128 KiB block and codes one symbol at
// a time. This writer builds one Huffman table per frame from the frame's histogram, sends it with
// the first block and repeats it (Treeless_Literals_Block) in the others, and codes two symbols per
// table lookup into the four streams of a block, two at a time interleaved. The frames are
// ordinary zstd frames: libzstd's ZSTD_decompress reads them, and the tests decode every frame
// written with it (tests/unit/test_zstd_literals.cpp). Speed: see LiteralsFrameEncoder.
//
// Layout of a frame (RFC 8878 §3.1.1): magic, a Frame_Header_Descriptor with Single_Segment_Flag
// and the content size (so the window is the content and a reader can check the declared length),
// then blocks of at most 128 KiB (Block_Maximum_Size, §3.1.1.2.4). Each block is one of:
//  - Compressed_Block: a literals section (§3.1.1.3.1) of Huffman-coded literals in 4 streams
//    (Compressed_Literals_Block with the Huffman_Tree_Description in the first such block of the
//    frame, Treeless_Literals_Block after it), then a sequences section of Number_of_Sequences 0
//    (one zero byte, §3.1.1.3.2.1): the block is its literals;
//  - RLE_Block, when the whole frame is one byte value;
//  - Raw_Block, when Huffman coding would not make the block smaller (or it is shorter than
//    kLiteralsMinHuffmanBlock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ckpt {

// RFC 8878 §4.2.1: a Huffman code of zstd literals is at most 11 bits long.
inline constexpr unsigned kLiteralsMaxCodeBits = 11;
// RFC 8878 §3.1.1.2.4: Block_Maximum_Size is at most 128 KiB.
inline constexpr size_t kZstdMaxBlockBytes = 128 * 1024;
// Blocks shorter than this are stored raw: 4 Huffman streams cost 5 (header) + 6 (jump table) + 4
// (end bits) bytes before any table, and the format allows 4 streams from 6 literals only
// (RFC 8878 §3.1.1.3.1.1); the tail of a tensor this short gains nothing worth the branch.
inline constexpr size_t kLiteralsMinHuffmanBlock = 64;

// Code lengths of a Huffman code for byte counts, none longer than max_bits (<= 11), the code
// complete (the lengths' Kraft sum is exactly 1, as RFC 8878 §4.2.1.1 requires: the last weight
// completes a power of 2). lengths[s] is 0 for a byte that does not occur. Needs at least two
// bytes with a nonzero count. A plain Huffman tree first; when it is deeper than max_bits, the
// deep codes are cut to max_bits and shorter codes lengthened one at a time until the Kraft sum
// is 1 again, the longest codes going to the rarest bytes.
void huffman_code_lengths(const uint32_t counts[256], unsigned max_bits, uint8_t lengths[256]);

// The Huffman_Tree_Description (RFC 8878 §4.2.1.1-2) of complete code lengths: a header byte,
// then the weights of bytes 0 .. last-1 (the last byte's weight is implied), FSE-compressed
// (§4.2.1.2, accuracy log 5 or 6, whichever is smaller) or 4 bits each (only when the last used
// byte is <= 128), the smaller of the two. Writes at most 129 bytes at out; returns the size, or
// 0 when neither form can describe the code (then the caller stores the literals raw).
size_t write_huffman_tree_description(const uint8_t lengths[256], uint8_t* out);

// Repeats are looked for at every kLiteralsRepeatStride-th byte (8 bytes against the last 8 with
// the same hash at such a position); a frame refuses when at least 1/kLiteralsRepeatShare of its
// bytes look repeated: libzstd's matches would then gain more than ~1 % of the frame.
inline constexpr size_t kLiteralsRepeatStride = 128;
inline constexpr uint64_t kLiteralsRepeatShare = 32;

// Byte counts of src, the plain loop: the reference the encoder's counting (eight scalar tables,
// or AVX2 compares where the CPU has them) is tested against.
void byte_counts_reference(const uint8_t* src, size_t n, uint32_t counts[256]);

// Per-thread state: the code tables and the four streams' scratch, reused across frames.
//
// Speed, one core of the 2-core dev VM, 512 KiB exponent planes in the cache (ckpt_bench_pack
// planes; BENCHMARKS.md, "The exponent plane through ckpt's own zstd frame writer"): 1558 MB/s on
// make_synthetic's planes, libzstd level 1 860 MB/s and ZSTD_compressSequences with no matches
// 926 MB/s on the same; of it, counting 4.5 GB/s (AVX2) and coding 3.1 GB/s. libzstd decodes the
// frames at 1.79 GB/s (its own level-1 frames: 1.73).
class LiteralsFrameEncoder {
 public:
  LiteralsFrameEncoder();
  // The most bytes encode() writes for n input bytes.
  static size_t bound(size_t n);
  // Writes one zstd frame holding the n bytes at src into dst (bound(n) bytes available);
  // returns its size. The output depends on the bytes alone. With refuse_repeats, returns 0
  // without writing when the bytes look repetitive (repeats() below), so the caller can give
  // them to a coder with match search instead.
  size_t encode(const uint8_t* src, size_t n, uint8_t* dst, bool refuse_repeats = false);
  // The estimate behind refuse_repeats, from the last encode(): bytes of the frame that repeat
  // 8 bytes seen earlier at a multiple of kLiteralsRepeatStride. Huffman literals cannot gain
  // from repeats (a run of one value still costs a bit a byte), and in weights they are real: a
  // trained model's untouched embedding rows repeat whole (testdata/llama-trained), a pruned or
  // zero tensor is runs. Checked once every 128 bytes (a row of a real model is a multiple of 128
  // values): at every 32 it cost 20 % of the counting pass.
  uint64_t repeated_bytes() const { return repeated_; }
  // The byte counts encode() builds its table from (exposed for the tests: they must equal
  // byte_counts_reference's whichever way they are counted); vector = false forces the scalar way.
  void byte_counts(const uint8_t* src, size_t n, uint32_t counts[256], bool vector = true) {
    use_vector_ = vector;
    scan(src, n, counts);
    use_vector_ = true;
  }

 private:
  // Codes one block's literals as a literals section; returns its size, or 0 when it would not
  // be smaller than the raw block.
  size_t literals_section(const uint8_t* lit, size_t n, bool with_table, uint8_t* out);
  size_t code_streams(const uint8_t* lit, size_t n, size_t sizes[4]);
  void build_tables(const uint8_t lengths[256]);
  // The byte counts of src and repeated_.
  void scan(const uint8_t* src, size_t n, uint32_t counts[256]);

  // The code of one byte, and of two bytes read as a little-endian uint16 (the later byte's code
  // first: a stream is written from its last literal backwards), top-aligned with the length in
  // the low byte (StreamOut in the .cpp says why).
  uint64_t single_[256];
  std::vector<uint64_t> pair_;
  uint8_t table_desc_[160];
  size_t table_desc_size_ = 0;
  std::vector<uint8_t> streams_[4];
  std::vector<uint32_t> seen_;  // position + 1 of the last 8 bytes with each hash, per frame
  uint64_t repeated_ = 0;
  bool use_vector_ = true;
};

}  // namespace ckpt
