#include "formats/zstd_literals.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <immintrin.h>

namespace ckpt {

namespace {

// The bitstreams are little-endian (RFC 8878 §4.1, §4.2.2): on a little-endian host a 64-bit store.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "zstd_literals writes little-endian words with memcpy");
inline void store_le64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline void store_le(uint8_t* p, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Hash table of the repeat check: 4096 positions, 16 KiB, cleared per frame.
constexpr unsigned kSeenLog = 12;

unsigned highbit(uint32_t v) { return 31u - static_cast<unsigned>(__builtin_clz(v)); }

// A forward bitstream, least significant bit first (RFC 8878 §4.1.1, FSE table descriptions), and
// the backward streams of §4.1 / §4.2.2 (FSE and Huffman bitstreams), which are written the same
// way and read from their end: the writer emits values in the reverse of the order they are read.
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : start_(out), p_(out) {}
  void put(uint64_t value, unsigned bits) {
    c_ |= value << n_;
    n_ += bits;
    if (n_ >= 32) {
      store_le(p_, c_, 4);
      p_ += 4;
      c_ >>= 32;
      n_ -= 32;
    }
  }
  // Byte-aligned end of a forward stream (the remaining bits of the last byte are unused).
  size_t finish() {
    store_le(p_, c_, (n_ + 7) / 8);
    return static_cast<size_t>(p_ - start_) + (n_ + 7) / 8;
  }
  // End of a backward stream: a single 1 bit marks where the reader starts (§4.2.2).
  size_t close() {
    put(1, 1);
    return finish();
  }

 private:
  uint8_t* start_;
  uint8_t* p_;
  uint64_t c_ = 0;
  unsigned n_ = 0;
};

// The FSE table (RFC 8878 §4.1.1) of normalized counts norm[0..max_symbol] summing to 1 << log:
// each symbol's cells in state order. No "less than 1" probabilities are written here, so every
// cell is spread with the format's step.
struct FseTable {
  unsigned log = 0;
  std::vector<std::vector<uint16_t>> cells;  // cells[s]: the states decoding to s, ascending

  FseTable(const int* norm, unsigned max_symbol, unsigned accuracy_log) : log(accuracy_log), cells(max_symbol + 1) {
    const unsigned size = 1u << log, step = (size >> 1) + (size >> 3) + 3;
    std::vector<uint8_t> symbol_at(size);
    unsigned pos = 0;
    for (unsigned s = 0; s <= max_symbol; ++s)
      for (int i = 0; i < norm[s]; ++i) {
        symbol_at[pos] = static_cast<uint8_t>(s);
        pos = (pos + step) & (size - 1);
      }
    for (unsigned st = 0; st < size; ++st) cells[symbol_at[st]].push_back(static_cast<uint16_t>(st));
  }
  // Decoding a cell of s reads Number_of_Bits bits and adds them to its Baseline (§4.1.1): the
  // j-th cell of a symbol with P cells stands for x = P + j, reads log - floor(log2 x) bits and
  // has Baseline (x << bits) - size, so the cells' ranges tile [0, size). Encoding s backwards
  // from `state` (the state the decoder reaches after s) finds the cell whose range holds it,
  // writes the offset into that range and moves to the cell.
  unsigned encode(BitWriter& w, unsigned state, unsigned s) const {
    const unsigned size = 1u << log, p = static_cast<unsigned>(cells[s].size());
    const unsigned v = state + size;
    unsigned bits = log - highbit(p);
    if ((v >> bits) < p) --bits;
    w.put(v & ((1u << bits) - 1), bits);
    return cells[s][(v >> bits) - p];
  }
};

// Normalizes counts (summing to total) to 1 << log, every present symbol at least 1: rounded
// shares, then the difference taken from or given to the largest ones.
void normalize(const unsigned* counts, unsigned max_symbol, unsigned total, unsigned log, int* norm) {
  const int size = 1 << log;
  int sum = 0;
  for (unsigned s = 0; s <= max_symbol; ++s) {
    norm[s] = counts[s] ? std::max(1, static_cast<int>((static_cast<uint64_t>(counts[s]) * size + total / 2) / total)) : 0;
    sum += norm[s];
  }
  while (sum != size) {
    unsigned big = 0;
    for (unsigned s = 1; s <= max_symbol; ++s)
      if (norm[s] > norm[big]) big = s;
    if (sum < size) {
      norm[big] += size - sum;
      sum = size;
    } else {
      const int take = std::min(sum - size, norm[big] - 1);
      norm[big] -= take;
      sum -= take;
    }
  }
}

// The FSE table description (RFC 8878 §4.1.1): Accuracy_Log - 5 in 4 bits, then per symbol its
// probability + 1 in a field whose width follows the probability points still to give out, and
// after a zero probability 2-bit flags counting the zeros that follow (3 = three more, continue).
size_t write_fse_description(const int* norm, unsigned max_symbol, unsigned log, uint8_t* out) {
  BitWriter w(out);
  w.put(log - 5, 4);
  int remaining = (1 << log) + 1, threshold = 1 << log;
  unsigned bits = log + 1;
  for (unsigned s = 0; s <= max_symbol && remaining > 1;) {
    const int value = norm[s] + 1;
    const int wasted = 2 * threshold - 1 - remaining;  // values read with one bit less
    if (value < wasted)
      w.put(static_cast<uint64_t>(value), bits - 1);
    else if (value < threshold)
      w.put(static_cast<uint64_t>(value), bits);
    else
      w.put(static_cast<uint64_t>(value + wasted), bits);
    remaining -= norm[s];
    while (remaining < threshold) {
      --bits;
      threshold >>= 1;
    }
    ++s;
    if (norm[s - 1] == 0) {
      unsigned zeros = 0;
      while (s + zeros <= max_symbol && norm[s + zeros] == 0) ++zeros;
      s += zeros;
      for (; zeros >= 3; zeros -= 3) w.put(3, 2);
      w.put(zeros, 2);
    }
  }
  return w.finish();
}

// Huffman weights 0..11 FSE-compressed with two interleaved states (RFC 8878 §4.2.1.2): State1
// decodes the even-indexed weights, State2 the odd ones, State1's initial value is read first;
// the decoder stops when a state update needs more bits than remain, then decodes the other
// state's symbol. So the update after weight n-2 must read at least one bit past the stream: its
// state starts on that weight's first cell, which reads log - floor(log2 P) >= 1 bits (P < size,
// as there are two or more distinct weights). Returns the bytes written (table description and
// bitstream), 0 when this accuracy log cannot code them.
size_t write_fse_weights(const uint8_t* weights, unsigned n, unsigned log, uint8_t* out) {
  unsigned counts[kLiteralsMaxCodeBits + 1] = {}, max_w = 0, distinct = 0;
  for (unsigned i = 0; i < n; ++i) {
    distinct += counts[weights[i]]++ == 0;
    max_w = std::max<unsigned>(max_w, weights[i]);
  }
  if (n < 2 || distinct < 2) return 0;
  int norm[kLiteralsMaxCodeBits + 1];
  normalize(counts, max_w, n, log, norm);
  const size_t head = write_fse_description(norm, max_w, log, out);
  FseTable t(norm, max_w, log);
  BitWriter w(out + head);
  unsigned state[2];
  state[(n - 1) & 1] = t.cells[weights[n - 1]][0];
  state[(n - 2) & 1] = t.cells[weights[n - 2]][0];
  for (unsigned i = n - 2; i-- > 0;) state[i & 1] = t.encode(w, state[i & 1], weights[i]);
  w.put(state[1], log);  // read second
  w.put(state[0], log);  // read first
  return head + w.close();
}

}  // namespace

void huffman_code_lengths(const uint32_t counts[256], unsigned max_bits, uint8_t lengths[256]) {
  // Leaves by count ascending (ties by byte), then the two-queue construction: internal nodes are
  // made in nondecreasing weight order, so the two smallest are always at the queues' fronts.
  uint8_t order[256];
  unsigned m = 0;
  for (unsigned s = 0; s < 256; ++s) {
    lengths[s] = 0;
    if (counts[s]) order[m++] = static_cast<uint8_t>(s);
  }
  if (m < 2) throw std::logic_error("huffman_code_lengths: fewer than two symbols");
  std::stable_sort(order, order + m, [&](uint8_t a, uint8_t b) { return counts[a] < counts[b]; });
  uint64_t weight[511];
  uint16_t parent[511];
  for (unsigned i = 0; i < m; ++i) weight[i] = counts[order[i]];
  unsigned leaf = 0, node = m;
  auto take = [&](unsigned made) {
    if (leaf < m && (node >= made || weight[leaf] <= weight[node])) return leaf++;
    return node++;
  };
  for (unsigned made = m; made < 2 * m - 1; ++made) {
    const unsigned a = take(made), b = take(made);
    weight[made] = weight[a] + weight[b];
    parent[a] = parent[b] = static_cast<uint16_t>(made);
  }
  uint8_t depth[511];
  depth[2 * m - 2] = 0;
  unsigned per_length[64] = {}, deepest = 0;
  for (unsigned i = 2 * m - 2; i-- > 0;) depth[i] = static_cast<uint8_t>(depth[parent[i]] + 1);
  for (unsigned i = 0; i < m; ++i) {
    ++per_length[depth[i]];
    deepest = std::max<unsigned>(deepest, depth[i]);
  }
  if (deepest > max_bits) {
    // Kraft sum in units of 2^-max_bits: cutting deep codes to max_bits overfills it; each step
    // removes one max_bits code (-1) and splits the deepest shorter code into two one bit longer
    // (+0), until it is exactly full. The number of codes stays m.
    for (unsigned l = max_bits + 1; l <= deepest; ++l) {
      per_length[max_bits] += per_length[l];
      per_length[l] = 0;
    }
    uint64_t kraft = 0;
    for (unsigned l = 1; l <= max_bits; ++l) kraft += static_cast<uint64_t>(per_length[l]) << (max_bits - l);
    for (; kraft > (1ull << max_bits); --kraft) {
      --per_length[max_bits];
      for (unsigned l = max_bits - 1; l > 0; --l)
        if (per_length[l]) {
          --per_length[l];
          per_length[l + 1] += 2;
          break;
        }
    }
    deepest = max_bits;
  }
  // Longest codes to the rarest bytes (order is ascending by count).
  unsigned i = 0;
  for (unsigned l = deepest; l > 0; --l)
    for (unsigned k = 0; k < per_length[l]; ++k) lengths[order[i++]] = static_cast<uint8_t>(l);
}

size_t write_huffman_tree_description(const uint8_t lengths[256], uint8_t* out) {
  unsigned max_len = 0, last = 0;
  for (unsigned s = 0; s < 256; ++s)
    if (lengths[s]) {
      max_len = std::max<unsigned>(max_len, lengths[s]);
      last = s;
    }
  if (max_len == 0 || max_len > kLiteralsMaxCodeBits || last == 0) return 0;
  // Weight = Max_Number_of_Bits + 1 - Number_of_Bits, 0 for an absent byte (§4.2.1.1); the
  // weights of bytes 0 .. last-1 are sent.
  uint8_t weights[256];
  for (unsigned s = 0; s < last; ++s) weights[s] = lengths[s] ? static_cast<uint8_t>(max_len + 1 - lengths[s]) : 0;
  size_t best = 0;
  uint8_t fse[512];  // 255 weights of up to 6 bits: written before the size is checked
  for (unsigned log : {5u, 6u}) {
    const size_t size = write_fse_weights(weights, last, log, fse);
    if (size && size < 128 && (best == 0 || size + 1 < best)) {
      out[0] = static_cast<uint8_t>(size);
      std::memcpy(out + 1, fse, size);
      best = size + 1;
    }
  }
  const size_t direct = 1 + (last + 1) / 2;
  if (last <= 128 && (best == 0 || direct < best)) {
    out[0] = static_cast<uint8_t>(127 + last);
    for (unsigned s = 0; s < last; s += 2)
      out[1 + s / 2] = static_cast<uint8_t>(weights[s] << 4 | (s + 1 < last ? weights[s + 1] : 0));
    best = direct;
  }
  return best;
}

LiteralsFrameEncoder::LiteralsFrameEncoder() : pair_(65536), seen_(size_t{1} << kSeenLog) {
  for (auto& s : streams_) s.resize(kZstdMaxBlockBytes / 4 * 2 + 64);
}

size_t LiteralsFrameEncoder::bound(size_t n) {
  // Frame header (4 magic + 1 descriptor + up to 8 content size) and a 3-byte header per block;
  // a block is never larger than its raw bytes. An empty frame still has one block.
  return 13 + 3 * (n / kZstdMaxBlockBytes + 1) + n;
}

// A code as the stream writer adds it: the code in the top bits, its length in the low byte.
inline uint64_t top_aligned(uint64_t code, unsigned len) { return code << (64 - len) | len; }

void LiteralsFrameEncoder::build_tables(const uint8_t lengths[256]) {
  // Canonical codes (§4.2.1.3): bytes by weight ascending (longest code first), ties by byte
  // value, each taking the next 2^(weight-1) slots of the 2^max_len-entry decoding table; its code
  // is its first slot in units of its width.
  unsigned max_len = 0;
  uint8_t used[256];
  uint32_t code[256];
  unsigned m = 0;
  for (unsigned s = 0; s < 256; ++s) {
    max_len = std::max<unsigned>(max_len, lengths[s]);
    single_[s] = 0;
    if (lengths[s]) used[m++] = static_cast<uint8_t>(s);
  }
  uint32_t next = 0;
  for (unsigned len = max_len; len > 0; --len)
    for (unsigned s = 0; s < 256; ++s)
      if (lengths[s] == len) {
        code[s] = next >> (max_len - len);
        single_[s] = top_aligned(code[s], len);
        next += 1u << (max_len - len);
      }
  // Pairs only of bytes that occur: an index of two bytes read little-endian at i holds byte i in
  // the low half; byte i+1 is written first, byte i after it (nearer the top, read earlier).
  for (unsigned a = 0; a < m; ++a)
    for (unsigned b = 0; b < m; ++b) {
      const unsigned la = lengths[used[a]], lb = lengths[used[b]];
      pair_[used[a] | used[b] << 8] = top_aligned(static_cast<uint64_t>(code[used[a]]) << lb | code[used[b]], la + lb);
    }
}

namespace {

// A backward Huffman stream (§4.2.2) written 4 literals at a time. The container holds its
// pending bits at the top, oldest lowest: adding a code shifts the container right by the code's
// length and ORs the top-aligned code in; the code's entry carries its length in its low byte,
// which lands below the pending bits (at most 7 + 2 * 22 = 51 of them, above bit 8) and is
// shifted out, and is added whole to the bit count, of which only the low byte is read. That is
// four operations a code (load, shift, or, add) and no shift at a flush, which writes the pending
// bits' whole bytes.
struct StreamOut {
  uint64_t c = 0;
  uint64_t n = 0;  // pending bits in the low byte
  uint8_t* p;
  __attribute__((always_inline)) void put(uint64_t e) {
    c >>= e & 63;
    c |= e;
    n += e;
  }
  __attribute__((always_inline)) void flush() {
    const unsigned bits = n & 0xff;  // >= 1: every flush follows at least one code
    store_le64(p, c >> (64 - bits));
    p += bits >> 3;
    n = bits & 7;
  }
};

inline uint32_t load_le16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Four streams of (n + 3) / 4 literals (the last up to 3 fewer), each coded from its end into
// out[j]: first single literals until a multiple of 4 remain, then 4 at a time. Two streams are
// interleaved in one loop so that their dependency chains (container, bit count) overlap; two
// and not four, so that both streams' state and the tables stay in registers (four spilled).
// Returns each stream's size (with its end mark) in sizes[j].
__attribute__((always_inline)) inline void code_two_streams(const uint64_t* single_table, const uint64_t* pair_table,
                                                            const uint8_t* const start[2], const uint8_t* const end[2],
                                                            uint8_t* const out[2], size_t sizes[2]) {
  // Local copies: stores through out could alias the table pointers' sources.
  const uint64_t* const single = single_table;
  const uint64_t* const pair = pair_table;
  const uint8_t* cur[2] = {end[0], end[1]};
  StreamOut s[2];
  for (unsigned j = 0; j < 2; ++j) {
    s[j].p = out[j];
    while ((cur[j] - start[j]) & 3) {
      --cur[j];
      s[j].put(single[*cur[j]]);
      s[j].flush();
    }
  }
  auto four = [&](StreamOut& so, const uint8_t*& c) __attribute__((always_inline)) {
    const uint32_t a = load_le16(c - 2), b = load_le16(c - 4);
    c -= 4;
    so.put(pair[a]);
    so.put(pair[b]);
    so.flush();
  };
  for (size_t k = static_cast<size_t>(std::min(cur[0] - start[0], cur[1] - start[1])) / 4; k > 0; --k) {
    four(s[0], cur[0]);
    four(s[1], cur[1]);
  }
  for (unsigned j = 0; j < 2; ++j) {
    while (cur[j] > start[j]) four(s[j], cur[j]);
    s[j].put(top_aligned(1, 1));  // the end mark (§4.2.2)
    const unsigned bits = s[j].n & 0xff;
    store_le64(s[j].p, s[j].c >> (64 - bits));
    sizes[j] = static_cast<size_t>(s[j].p - out[j]) + (bits + 7) / 8;
  }
}

__attribute__((always_inline)) inline void code_streams_body(const uint64_t* single, const uint64_t* pair,
                                                             const uint8_t* lit, size_t n, uint8_t* const out[4],
                                                             size_t sizes[4]) {
  const size_t seg = (n + 3) / 4;
  const uint8_t* const start[4] = {lit, lit + seg, lit + 2 * seg, lit + 3 * seg};
  const uint8_t* const end[4] = {lit + seg, lit + 2 * seg, lit + 3 * seg, lit + n};
  code_two_streams(single, pair, start, end, out, sizes);
  code_two_streams(single, pair, start + 2, end + 2, out + 2, sizes + 2);
}

// The same code compiled for BMI2's single-uop variable shifts (shlx/shrx: the loop is mostly
// shifts), chosen at run time; the bytes written are the same.
__attribute__((target("bmi2"))) void code_streams_bmi2(const uint64_t* single, const uint64_t* pair, const uint8_t* lit,
                                                      size_t n, uint8_t* const out[4], size_t sizes[4]) {
  code_streams_body(single, pair, lit, n, out, sizes);
}
void code_streams_plain(const uint64_t* single, const uint64_t* pair, const uint8_t* lit, size_t n,
                        uint8_t* const out[4], size_t sizes[4]) {
  code_streams_body(single, pair, lit, n, out, sizes);
}

}  // namespace

size_t LiteralsFrameEncoder::code_streams(const uint8_t* lit, size_t n, size_t sizes[4]) {
  static const bool bmi2 = __builtin_cpu_supports("bmi2");
  uint8_t* const out[4] = {streams_[0].data(), streams_[1].data(), streams_[2].data(), streams_[3].data()};
  if (bmi2)
    code_streams_bmi2(single_, pair_.data(), lit, n, out, sizes);
  else
    code_streams_plain(single_, pair_.data(), lit, n, out, sizes);
  return 6 + sizes[0] + sizes[1] + sizes[2] + sizes[3];
}

size_t LiteralsFrameEncoder::literals_section(const uint8_t* lit, size_t n, bool with_table, uint8_t* out) {
  // Header of 5 bytes (Size_Format 3: 4 streams, 18-bit sizes, §3.1.1.3.1.1); the section must
  // leave room for the sequences byte within n, or the block is stored raw.
  size_t at = 5;
  if (with_table) {
    std::memcpy(out + at, table_desc_, table_desc_size_);
    at += table_desc_size_;
  }
  // The streams go to scratch first: they are copied only once the section is known to fit.
  size_t sizes[4];
  if (at + code_streams(lit, n, sizes) + 1 >= n) return 0;
  for (unsigned j = 0; j < 3; ++j) store_le(out + at + 2 * j, sizes[j], 2);
  at += 6;
  for (unsigned j = 0; j < 4; ++j) {
    std::memcpy(out + at, streams_[j].data(), sizes[j]);
    at += sizes[j];
  }
  const uint64_t type = with_table ? 2 : 3;
  store_le(out, type | 3u << 2 | static_cast<uint64_t>(n) << 4 | static_cast<uint64_t>(at - 5) << 22, 5);
  return at;
}

namespace {

// The repeat check of scan(): seen holds position + 1 (0: empty) of the last 8 bytes with each
// hash; a hit is the same 8 bytes at a position seen before.
__attribute__((always_inline)) inline uint64_t repeat_hit(uint32_t* seen, const uint8_t* src, size_t i) {
  uint64_t v, w;
  std::memcpy(&v, src + i, 8);
  uint32_t& slot = seen[(v * 0x9E3779B97F4A7C15ull) >> (64 - kSeenLog)];
  std::memcpy(&w, src + (slot ? slot - 1 : i), 8);
  const uint64_t hit = slot != 0 && w == v;
  slot = static_cast<uint32_t>(i + 1);
  return hit;
}

// Scalar counting: eight bytes per load, each into its own table of counters, so that runs of one
// value do not wait on their own increments (written out: GCC at -O2 keeps a loop over the eight,
// 2x slower). ~1 cycle a byte, the store port's limit. Adds to h8[0..7] from src[from, to).
void count_scalar(const uint8_t* src, size_t from, size_t to, uint32_t (*h)[256]) {
  size_t i = from;
  for (; i + 8 <= to; i += 8) {
    uint64_t v;
    std::memcpy(&v, src + i, 8);
    ++h[0][v & 0xff];
    ++h[1][(v >> 8) & 0xff];
    ++h[2][(v >> 16) & 0xff];
    ++h[3][(v >> 24) & 0xff];
    ++h[4][(v >> 32) & 0xff];
    ++h[5][(v >> 40) & 0xff];
    ++h[6][(v >> 48) & 0xff];
    ++h[7][v >> 56];
  }
  for (; i < to; ++i) ++h[0][src[i]];
}

uint64_t repeats_scalar(const uint8_t* src, size_t n, uint32_t* seen) {
  uint64_t hits = 0;
  for (size_t i = 0; i + kLiteralsRepeatStride <= n; i += kLiteralsRepeatStride) hits += repeat_hit(seen, src, i);
  return hits;
}

// AVX2: the kVectorSymbols most frequent bytes of the first kLiteralsVectorHead bytes (then any
// others, to make them distinct) are counted with byte compares, 32 bytes a step, into byte
// counters folded into sums (psadbw) before they can wrap; bytes that are none of them are
// counted by the scalar tables. Exact whatever the choice. Ten: on make_synthetic's exponent plane
// they cover 99.75 % of the bytes, and ten counters stay in registers (twelve spill: measured
// 3.9 GB/s for ten, 3.2 for twelve, 2.9 scalar, one core). The repeat check runs on the same steps.
constexpr size_t kLiteralsVectorHead = 4096;
constexpr unsigned kVectorSymbols = 10;

// Adds the byte counters' sums to total and clears them.
__attribute__((target("avx2"))) inline void fold_counters(__m256i* acc, uint64_t* total) {
  for (unsigned k = 0; k < kVectorSymbols; ++k) {
    const __m256i sad = _mm256_sad_epu8(acc[k], _mm256_setzero_si256());
    total[k] += static_cast<uint64_t>(_mm256_extract_epi64(sad, 0)) + static_cast<uint64_t>(_mm256_extract_epi64(sad, 1)) +
                static_cast<uint64_t>(_mm256_extract_epi64(sad, 2)) + static_cast<uint64_t>(_mm256_extract_epi64(sad, 3));
    acc[k] = _mm256_setzero_si256();
  }
}

__attribute__((target("avx2"))) uint64_t scan_avx2(const uint8_t* src, size_t n, uint32_t (*h)[256], uint32_t* seen) {
  const size_t head = std::min(n, kLiteralsVectorHead) / kLiteralsRepeatStride * kLiteralsRepeatStride;
  count_scalar(src, 0, head, h);
  uint64_t hits = 0;
  for (size_t i = 0; i + kLiteralsRepeatStride <= head; i += kLiteralsRepeatStride) hits += repeat_hit(seen, src, i);
  uint8_t sym[kVectorSymbols];
  {
    uint32_t c[256];
    bool taken[256] = {};
    for (unsigned b = 0; b < 256; ++b) c[b] = h[0][b] + h[1][b] + h[2][b] + h[3][b] + h[4][b] + h[5][b] + h[6][b] + h[7][b];
    for (unsigned k = 0; k < kVectorSymbols; ++k) {
      unsigned best = 256;
      for (unsigned b = 0; b < 256; ++b)
        if (!taken[b] && (best == 256 || c[b] > c[best])) best = b;
      taken[best] = true;
      sym[k] = static_cast<uint8_t>(best);
    }
  }
  __m256i want[kVectorSymbols], acc[kVectorSymbols];
  uint64_t total[kVectorSymbols] = {};
  for (unsigned k = 0; k < kVectorSymbols; ++k) {
    want[k] = _mm256_set1_epi8(static_cast<char>(sym[k]));
    acc[k] = _mm256_setzero_si256();
  }
  size_t i = head;
  unsigned steps = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m256i any = _mm256_setzero_si256();
#pragma GCC unroll 10  // the counters must stay in registers (ten do with the loop's other values)
    for (unsigned k = 0; k < kVectorSymbols; ++k) {
      const __m256i eq = _mm256_cmpeq_epi8(x, want[k]);
      acc[k] = _mm256_sub_epi8(acc[k], eq);
      any = _mm256_or_si256(any, eq);
    }
    if (uint32_t other = ~static_cast<uint32_t>(_mm256_movemask_epi8(any)))
      for (; other; other &= other - 1) ++h[0][src[i + static_cast<unsigned>(__builtin_ctz(other))]];
    if (i % kLiteralsRepeatStride == 0 && i + kLiteralsRepeatStride <= n) hits += repeat_hit(seen, src, i);
    if (++steps == 255) {  // a byte counter gains at most 1 a step
      fold_counters(acc, total);
      steps = 0;
    }
  }
  fold_counters(acc, total);
  for (unsigned k = 0; k < kVectorSymbols; ++k) h[0][sym[k]] += static_cast<uint32_t>(total[k]);
  count_scalar(src, i, n, h);
  return hits;
}

}  // namespace

void byte_counts_reference(const uint8_t* src, size_t n, uint32_t counts[256]) {
  for (unsigned b = 0; b < 256; ++b) counts[b] = 0;
  for (size_t i = 0; i < n; ++i) ++counts[src[i]];
}

void LiteralsFrameEncoder::scan(const uint8_t* src, size_t n, uint32_t counts[256]) {
  static_assert(kLiteralsRepeatStride % 32 == 0, "scan_avx2 checks at the start of a 32-byte step");
  static const bool avx2 = __builtin_cpu_supports("avx2");
  uint32_t h[8][256] = {};
  std::memset(seen_.data(), 0, seen_.size() * sizeof(uint32_t));
  uint64_t hits;
  if (avx2 && use_vector_) {
    hits = scan_avx2(src, n, h, seen_.data());
  } else {
    count_scalar(src, 0, n, h);
    hits = repeats_scalar(src, n, seen_.data());
  }
  for (unsigned b = 0; b < 256; ++b) counts[b] = h[0][b] + h[1][b] + h[2][b] + h[3][b] + h[4][b] + h[5][b] + h[6][b] + h[7][b];
  repeated_ = hits * kLiteralsRepeatStride;
}

size_t LiteralsFrameEncoder::encode(const uint8_t* src, size_t n, uint8_t* dst, bool refuse_repeats) {
  uint32_t counts[256];
  scan(src, n, counts);
  if (refuse_repeats && n && repeated_ * kLiteralsRepeatShare >= n) return 0;

  // Frame header (§3.1.1.1): magic 0xFD2FB528; descriptor with Single_Segment_Flag and the
  // content-size field width (1, 2 with 256 subtracted, or 4 bytes), no checksum, no dictionary.
  store_le(dst, 0xFD2FB528u, 4);
  size_t at = 5;
  unsigned fcs_flag;
  if (n < 256) {
    fcs_flag = 0;
    store_le(dst + at, n, 1);
    at += 1;
  } else if (n < 65536 + 256) {
    fcs_flag = 1;
    store_le(dst + at, n - 256, 2);
    at += 2;
  } else if (n <= 0xffffffffull) {
    fcs_flag = 2;
    store_le(dst + at, n, 4);
    at += 4;
  } else {
    fcs_flag = 3;
    store_le(dst + at, n, 8);
    at += 8;
  }
  dst[4] = static_cast<uint8_t>(fcs_flag << 6 | 1u << 5);

  // One Huffman table for the frame, from its histogram; the first coded block carries it.
  unsigned distinct = 0;
  for (unsigned b = 0; b < 256; ++b) distinct += counts[b] != 0;
  table_desc_size_ = 0;
  if (distinct >= 2) {
    uint8_t lengths[256];
    huffman_code_lengths(counts, kLiteralsMaxCodeBits, lengths);
    table_desc_size_ = write_huffman_tree_description(lengths, table_desc_);
    if (table_desc_size_) build_tables(lengths);
  }

  bool table_sent = false;
  size_t pos = 0;
  do {
    const size_t len = std::min(kZstdMaxBlockBytes, n - pos);
    const bool last = pos + len == n;
    uint8_t* block = dst + at + 3;
    uint64_t type, size;
    size_t body = 0;
    if (distinct == 1) {  // RLE_Block: the byte once, Block_Size the regenerated size
      type = 1;
      block[0] = src[pos];
      body = 1;
      size = len;
    } else {
      if (table_desc_size_ && len >= kLiteralsMinHuffmanBlock) {
        body = literals_section(src + pos, len, !table_sent, block);
        if (body) {
          block[body++] = 0;  // Number_of_Sequences = 0
          table_sent = true;
        }
      }
      if (body) {
        type = 2;
      } else {
        type = 0;
        if (len) std::memcpy(block, src + pos, len);
        body = len;
      }
      size = body;
    }
    // Block_Header (§3.1.1.2): Last_Block, Block_Type, Block_Size, 3 bytes little-endian.
    store_le(dst + at, (last ? 1u : 0u) | type << 1 | size << 3, 3);
    at += 3 + body;
    pos += len;
  } while (pos < n);
  return at;
}

}  // namespace ckpt
