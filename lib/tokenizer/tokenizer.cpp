#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <bit>
#include <optional>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "core/hash.h"
#include "tokenizer/regex.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/unicode.h"

namespace ckpt::tok {

namespace {

// GPT-2's byte-level pre-tokenizer pattern (tokenizers pre_tokenizers/byte_level.rs) and the
// Whitespace pre-tokenizer's (pre_tokenizers/whitespace.rs).
const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kWhitespacePattern = R"(\w+|[^\w\s]+)";

// Words at most this long are cached, at most this many (tokenizers utils/cache.rs: MAX_LENGTH,
// DEFAULT_CACHE_CAPACITY); the cache changes speed only, never ids.
constexpr size_t kCacheMaxWordBytes = 256;
constexpr size_t kCacheCapacity = 10000;

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest are shifted
// to U+0100 and up, in byte order.
struct ByteLevelTable {
  uint32_t byte_to_cp[256];
  int16_t cp_to_byte[324];   // every code point used is below 0x144
  ByteLevelTable() {
    std::fill(std::begin(cp_to_byte), std::end(cp_to_byte), int16_t{-1});
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
  // The raw bytes a byte-level string stands for; false when a character is outside the table.
  bool to_bytes(std::string_view s, std::string* out) const {
    out->clear();
    for (size_t i = 0; i < s.size();) {
      size_t len;
      uint32_t cp = decode_utf8(s.data() + i, &len);
      if (cp >= 324 || cp_to_byte[cp] < 0) return false;
      out->push_back(static_cast<char>(cp_to_byte[cp]));
      i += len;
    }
    return true;
  }
};
const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable t;
  return t;
}

struct Range {
  size_t begin, end;
  bool is_match;
};

// tokenizers NormalizedString::split: how matches and the text between them become pieces.
void apply_behavior(std::vector<Range>& r, SplitBehavior behavior, std::vector<std::pair<size_t, size_t>>* out) {
  out->clear();
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Range& x : r) out->emplace_back(x.begin, x.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Range& x : r)
        if (!x.is_match) out->emplace_back(x.begin, x.end);
      break;
    case SplitBehavior::kContiguous: {
      bool prev = false;
      for (const Range& x : r) {
        if (x.is_match == prev && !out->empty()) out->back().second = x.end;
        else out->emplace_back(x.begin, x.end);
        prev = x.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool prev = false;
      for (const Range& x : r) {
        if (x.is_match && !prev && !out->empty()) out->back().second = x.end;
        else out->emplace_back(x.begin, x.end);
        prev = x.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev = false;
      for (auto it = r.rbegin(); it != r.rend(); ++it) {
        if (it->is_match && !prev && !out->empty()) out->back().first = it->begin;
        else out->emplace_back(it->begin, it->end);
        prev = it->is_match;
      }
      std::reverse(out->begin(), out->end());
      break;
    }
  }
}

// Matches as tokenizers' Pattern::find_matches lists them: every byte of `text` in one range.
void ranges_from_matches(size_t n, const std::vector<std::pair<size_t, size_t>>& matches, bool invert,
                         std::vector<Range>* r) {
  r->clear();
  if (n == 0) {
    r->push_back({0, 0, invert});
    return;
  }
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) r->push_back({prev, b, invert});
    r->push_back({b, e, !invert});
    prev = e;
  }
  if (prev != n) r->push_back({prev, n, invert});
}

// Every non-overlapping occurrence of `pat` (non-empty), left to right.
void find_string(std::string_view text, std::string_view pat, std::vector<std::pair<size_t, size_t>>* out) {
  out->clear();
  for (size_t pos = text.find(pat); pos != std::string_view::npos; pos = text.find(pat, pos + pat.size()))
    out->emplace_back(pos, pos + pat.size());
}

// Each character for which `pred` holds is one match.
template <class Pred>
void find_chars(std::string_view text, Pred pred, std::vector<std::pair<size_t, size_t>>* out) {
  out->clear();
  for (size_t i = 0; i < text.size();) {
    size_t len;
    uint32_t cp = decode_utf8(text.data() + i, &len);
    if (pred(cp)) out->emplace_back(i, i + len);
    i += len;
  }
}

std::string replace_ranges(std::string_view text, const std::vector<std::pair<size_t, size_t>>& m,
                           std::string_view with) {
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (auto [b, e] : m) {
    out.append(text.substr(prev, b - prev));
    out.append(with);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

// Leftmost-longest matching of added tokens (tokenizers uses a LeftmostLongest Aho-Corasick
// automaton; scanning positions left to right and taking the longest token at the first position
// that has one gives the same matches).
class AddedMatcher {
 public:
  void add(const std::string& content, int32_t index) {
    int node = 0;
    for (unsigned char c : content) {
      int child = find(node, c);
      if (child < 0) {
        child = static_cast<int>(nodes_.size());
        nodes_.push_back({});
        nodes_[node].children.emplace_back(c, child);
        std::sort(nodes_[node].children.begin(), nodes_[node].children.end());
      }
      node = child;
    }
    if (nodes_[node].value < 0) nodes_[node].value = index;
    first_byte_[static_cast<unsigned char>(content[0])] = true;
  }
  bool empty() const { return nodes_[0].children.empty(); }
  // The longest token starting at text[pos]: its index, and its length in *len; -1 when none.
  int match_at(std::string_view text, size_t pos, size_t* len) const {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) return -1;
    int node = 0, best = -1;
    for (size_t i = pos; i < text.size(); ++i) {
      node = find(node, static_cast<unsigned char>(text[i]));
      if (node < 0) break;
      if (nodes_[node].value >= 0) {
        best = nodes_[node].value;
        *len = i + 1 - pos;
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;
    int value = -1;
  };
  int find(int node, unsigned char c) const {
    const auto& ch = nodes_[node].children;
    auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, -1));
    return it != ch.end() && it->first == c ? it->second : -1;
  }
  std::vector<Node> nodes_{1};
  bool first_byte_[256] = {};
};

struct Piece {
  std::string text;
  bool at_start;   // begins at offset 0 of the original text (Metaspace's "first" scheme)
};

struct Segment {
  size_t begin, end;
  int token;   // index into added tokens, or -1 for text
};

// An open-addressing hash map from u64 keys to V (linear probing, power-of-two table at most half
// full): the merge table and the character lookup run once per symbol of every word, and a flat
// table costs one cache miss where a node-based map costs two or three.
template <class V>
class FlatU64Map {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};   // never a key: ids and code points are < 2^32
  bool empty() const { return count_ == 0; }
  const V* find(uint64_t key) const {
    if (count_ == 0) return nullptr;
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  // Inserts, or overwrites the value of a key already there.
  void assign(uint64_t key, V value) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == kEmpty) {
        s = {key, value};
        ++count_;
        return;
      }
      if (s.key == key) {
        s.value = value;
        return;
      }
    }
  }
  void reserve(size_t n) {
    while (n * 2 > slots_.size()) grow();
  }

 private:
  struct Slot {
    uint64_t key;
    V value;
  };
  // Fibonacci hashing: the high bits of key * 2^64/phi spread consecutive ids over the table.
  size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    size_t cap = old.empty() ? 16 : old.size() * 2;
    slots_.assign(cap, Slot{kEmpty, V{}});
    mask_ = cap - 1;
    shift_ = 64 - std::countr_zero(cap);
    count_ = 0;
    for (const Slot& s : old)
      if (s.key != kEmpty) assign(s.key, s.value);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t count_ = 0;
};

// The model's ids of recently seen words (pre-tokenized pieces), as tokenizers' BPE keeps them
// (utils/cache.rs): words shorter than kCacheMaxWordBytes, the first kCacheCapacity distinct ones.
// Looked up by the piece's bytes without building a string; the keys and ids live in two arenas,
// bounded by the capacity (at most 2.5 MB of keys).
class WordCache {
 public:
  // Appends the cached ids of `word` to *out; false when it is not cached.
  bool find(std::string_view word, std::vector<int32_t>* out) const {
    if (count_ == 0 || word.empty() || word.size() >= kCacheMaxWordBytes) return false;
    uint64_t h = hash_bytes(word.data(), word.size());
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return false;
      if (s.hash == h && std::string_view(keys_.data() + s.key_off, s.key_len) == word) {
        out->insert(out->end(), ids_.begin() + s.ids_off, ids_.begin() + s.ids_off + s.ids_len);
        return true;
      }
    }
  }
  // Remembers the ids of a word not cached yet (nothing when full or the word is too long).
  void insert(std::string_view word, std::span<const int32_t> ids) {
    if (word.empty() || word.size() >= kCacheMaxWordBytes || count_ >= kCacheCapacity) return;
    if ((count_ + 1) * 2 > slots_.size()) grow();
    uint64_t h = hash_bytes(word.data(), word.size());
    size_t i = h & mask_;
    while (slots_[i].key_len != 0) i = (i + 1) & mask_;
    slots_[i] = {h, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(ids_.size()),
                 static_cast<uint32_t>(word.size()), static_cast<uint32_t>(ids.size())};
    keys_.append(word);
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    ++count_;
  }

 private:
  struct Slot {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint32_t key_len, ids_len;   // key_len 0: an empty slot
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    size_t cap = old.empty() ? 64 : old.size() * 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old) {
      if (s.key_len == 0) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].key_len != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
  std::string keys_;
  std::vector<int32_t> ids_;
};

using Cache = WordCache;

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// SentencePiece's whitespace symbol, which SentencePiece-style BPE normalizers put before words.
constexpr std::string_view kMetaspace = "\xe2\x96\x81";

struct MergeValue {
  uint32_t rank;
  int32_t new_id;
};

}  // namespace

struct Tokenizer::Impl {
  TokenizerModel m;
  // Added tokens: those matched on the raw text, and those matched after normalization.
  AddedMatcher raw_matcher, normalized_matcher;
  std::vector<const AddedToken*> raw_tokens, normalized_tokens;
  std::vector<bool> special;   // by id: skipped by decode(skip_special_tokens)
  std::vector<std::unique_ptr<Regex>> normalizer_regex;    // per normalizer step (Replace Regex)
  std::vector<std::unique_ptr<Regex>> pre_regex;           // per pre-tokenizer step
  // Model tables.
  std::unordered_map<std::string, int32_t> vocab;   // the model's own vocabulary
  std::unordered_map<std::string, int32_t> raw_vocab;   // byte-level: raw bytes -> id
  FlatU64Map<MergeValue> merges;   // pair_key(a, b) -> rank and the merged id
  // Single-character tokens by code point, for the initial symbols when there is no
  // continuing_subword_prefix / end_of_word_suffix (the same lookup as by string, without one).
  FlatU64Map<int32_t> char_symbol;
  int32_t byte_symbol[256];     // byte-level: each byte's initial symbol (-1: not in vocab)
  int32_t fallback_symbol[256]; // byte fallback <0xNN> ids (-1: none)
  std::optional<int32_t> unk;
  // SentencePiece-style BPE: a word may be cut before each "▁" that follows another character,
  // because no merge can join the two sides (proven from the merges in build_bpe).
  bool split_at_metaspace = false;
  std::unique_ptr<SentencePieceRunner> sp;
  std::string empty;

  explicit Impl(TokenizerModel model);
  void build_bpe();
  void split_added(std::string_view text, const AddedMatcher& matcher, const std::vector<const AddedToken*>& tokens,
                   std::vector<Segment>* out) const;
  std::string normalize_text(std::string_view text) const;
  void pre_tokenize(std::string text, bool at_start, std::vector<Piece>* pieces) const;
  void model_encode(std::string_view word, Cache& cache, std::vector<int32_t>* out) const;
  void bpe_word_cached(std::string_view word, Cache& cache, std::vector<int32_t>* out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>* out) const;
  void encode_text(std::string_view text, bool at_start, Cache& cache, std::vector<int32_t>* out) const;
  std::vector<int32_t> encode(std::string_view text, bool add_special, Cache& cache) const;
};

Tokenizer::Impl::Impl(TokenizerModel model) : m(std::move(model)) {
  const std::string& path = m.path;
  special.assign(m.vocab.size(), false);
  for (const AddedToken& a : m.added_tokens) {
    if (a.special) special[a.id] = true;
  }
  for (size_t i = 0; i < m.normalizer.size(); ++i) {
    const NormalizerStep& s = m.normalizer[i];
    normalizer_regex.push_back(s.kind == NormalizerStep::kReplace && s.regex
                                   ? std::make_unique<Regex>(s.text, path + ": normalizer Replace")
                                   : nullptr);
  }
  for (size_t i = 0; i < m.pre_tokenizer.size(); ++i) {
    const PreTokenizerStep& s = m.pre_tokenizer[i];
    if (s.kind == PreTokenizerStep::kByteLevel && i + 1 != m.pre_tokenizer.size())
      fail(Errc::kTokenizerUnsupported, path, "", "a pre-tokenizer step after ByteLevel");
    std::unique_ptr<Regex> re;
    if (s.kind == PreTokenizerStep::kSplit && s.regex) re = std::make_unique<Regex>(s.pattern, path + ": pre_tokenizer Split");
    if (s.kind == PreTokenizerStep::kByteLevel && s.use_regex) re = std::make_unique<Regex>(kGpt2Pattern, path);
    if (s.kind == PreTokenizerStep::kWhitespace) re = std::make_unique<Regex>(kWhitespacePattern, path);
    pre_regex.push_back(std::move(re));
  }
  if (m.byte_level) {
    for (const DecoderStep& d : m.decoder)
      if (d.kind == DecoderStep::kByteFallback || d.kind == DecoderStep::kMetaspace)
        fail(Errc::kTokenizerUnsupported, path, "", "a ByteLevel pre-tokenizer with a byte-fallback or Metaspace decoder");
  }
  // Added tokens: raw ones are matched first, normalized ones in the normalized text, by their
  // normalized content (tokenizers added_vocabulary.rs refresh_added_tokens).
  for (const AddedToken& a : m.added_tokens) {
    if (a.normalized && !m.normalizer.empty()) {
      std::string n = normalize_text(a.content);
      if (n.empty()) continue;
      normalized_matcher.add(n, static_cast<int32_t>(normalized_tokens.size()));
      normalized_tokens.push_back(&a);
    } else if (a.normalized) {
      normalized_matcher.add(a.content, static_cast<int32_t>(normalized_tokens.size()));
      normalized_tokens.push_back(&a);
    } else {
      raw_matcher.add(a.content, static_cast<int32_t>(raw_tokens.size()));
      raw_tokens.push_back(&a);
    }
  }
  std::fill(std::begin(byte_symbol), std::end(byte_symbol), -1);
  std::fill(std::begin(fallback_symbol), std::end(fallback_symbol), -1);
  if (m.kind == ModelKind::kSentencePiece) {
    sp = std::make_unique<SentencePieceRunner>(m.path, m.sentencepiece_proto);
    return;
  }
  for (size_t id = 0; id < m.vocab.size(); ++id)
    if (m.in_model_vocab[id]) vocab.emplace(m.vocab[id], static_cast<int32_t>(id));
  if (m.unk_token) {
    auto it = vocab.find(*m.unk_token);
    if (it == vocab.end()) fail(Errc::kTokenizerInvalid, path, "", "unk_token \"" + *m.unk_token + "\" is not in the vocabulary");
    unk = it->second;
  }
  if (m.kind == ModelKind::kBpe) build_bpe();
}

void Tokenizer::Impl::build_bpe() {
  const std::string& path = m.path;
  merges.reserve(m.merges.size());
  const size_t prefix = m.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < m.merges.size(); ++rank) {
    const auto& [a, b] = m.merges[rank];
    auto ia = vocab.find(a), ib = vocab.find(b);
    if (ia == vocab.end() || ib == vocab.end())
      fail(Errc::kTokenizerInvalid, path, "", "merge " + std::to_string(rank) + " (\"" + a + "\", \"" + b +
                                                  "\") uses a token that is not in the vocabulary");
    if (b.size() < prefix || b.compare(0, prefix, m.continuing_subword_prefix) != 0)
      fail(Errc::kTokenizerInvalid, path, "", "merge " + std::to_string(rank) + " does not start with the continuing_subword_prefix");
    auto in = vocab.find(a + b.substr(prefix));
    if (in == vocab.end())
      fail(Errc::kTokenizerInvalid, path, "", "merge " + std::to_string(rank) + " makes \"" + a + b.substr(prefix) +
                                                  "\", which is not in the vocabulary");
    // A repeated pair: the last rank wins, as in tokenizers.
    merges.assign(pair_key(ia->second, ib->second), {static_cast<uint32_t>(rank), in->second});
  }
  if (m.byte_level) {
    if (!m.continuing_subword_prefix.empty() || !m.end_of_word_suffix.empty())
      fail(Errc::kTokenizerUnsupported, path, "", "byte-level BPE with continuing_subword_prefix or end_of_word_suffix");
    const ByteLevelTable& t = byte_level_table();
    std::string raw;
    for (auto& [s, id] : vocab)
      if (t.to_bytes(s, &raw)) raw_vocab.emplace(raw, id);
    for (int b = 0; b < 256; ++b) {
      std::string s;
      append_utf8(t.byte_to_cp[b], &s);
      auto it = vocab.find(s);
      if (it != vocab.end()) byte_symbol[b] = it->second;
    }
  }
  if (m.continuing_subword_prefix.empty() && m.end_of_word_suffix.empty()) {
    for (auto& [str, id] : vocab) {
      if (str.empty()) continue;
      size_t len;
      uint32_t cp = decode_utf8(str.data(), &len);
      if (len == str.size() && utf8_len(static_cast<unsigned char>(str[0])) == len && !char_symbol.find(cp))
        char_symbol.assign(cp, id);
    }
  }
  if (m.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto it = vocab.find(name);
      if (it != vocab.end()) fallback_symbol[b] = it->second;
    }
  }
  // Cutting a word before a "▁" that follows another character changes no id when no merge can
  // ever join a symbol ending before the cut (X) with one starting at it (Y). Y's string starts
  // with "▁" when "▁" is a token of its own (the first symbol at the cut is that token and merged
  // strings are concatenations). X's string ends with the character before the cut, which is not
  // "▁", or is a byte-fallback "<0xNN>" or the unk token -- provided no character is dropped, as
  // a character without a token, byte fallback or unk is (then X could be a "▁" before it). So
  // the cut is safe when every character gets a symbol, every merge (a, b) whose b starts with
  // "▁" has an a that ends with "▁", and unk does not end with "▁".
  // Merges such as ("▁▁", "▁") are what forbid cutting inside runs of "▁". Byte-level models map
  // bytes to other symbols; a prefix/suffix or ignore_merges makes a word's ids depend on the
  // whole word.
  auto ends_with_meta = [](std::string_view t) { return t.ends_with(kMetaspace); };
  const bool full_fallback = m.byte_fallback && std::none_of(std::begin(fallback_symbol), std::end(fallback_symbol),
                                                              [](int32_t id) { return id < 0; });
  split_at_metaspace = !m.byte_level && m.continuing_subword_prefix.empty() && m.end_of_word_suffix.empty() &&
                       !m.ignore_merges && vocab.count(std::string(kMetaspace)) && (unk || full_fallback) &&
                       !(unk && ends_with_meta(m.vocab[*unk]));
  for (size_t rank = 0; split_at_metaspace && rank < m.merges.size(); ++rank) {
    const auto& [a, b] = m.merges[rank];
    if (std::string_view(b).starts_with(kMetaspace) && !ends_with_meta(a)) split_at_metaspace = false;
  }
}

void Tokenizer::Impl::split_added(std::string_view text, const AddedMatcher& matcher,
                                  const std::vector<const AddedToken*>& tokens, std::vector<Segment>* out) const {
  out->clear();
  if (matcher.empty() || text.empty()) {
    if (!text.empty()) out->push_back({0, text.size(), -1});
    return;
  }
  size_t start_offset = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t len = 0;
    int idx = matcher.match_at(text, pos, &len);
    if (idx < 0) {
      ++pos;
      continue;
    }
    const AddedToken& a = *tokens[idx];
    size_t start = pos, stop = pos + len;
    pos = stop;   // the automaton's next match starts after this one, kept or not
    auto cp_before = [&](size_t at) {
      size_t b = at;
      do --b; while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80);
      size_t l;
      return decode_utf8(text.data() + b, &l);
    };
    if (a.single_word) {
      size_t l;
      bool start_ok = start == 0 || !is_word_char(cp_before(start));
      bool stop_ok = stop == text.size() || !is_word_char(decode_utf8(text.data() + stop, &l));
      if (!start_ok || !stop_ok) continue;
    }
    if (a.lstrip) {
      size_t s = start;
      while (s > 0 && is_whitespace(cp_before(s))) {
        size_t b = s;
        do --b; while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80);
        s = b;
      }
      start = std::max(s, start_offset);
    }
    if (a.rstrip) {
      size_t l;
      while (stop < text.size() && is_whitespace(decode_utf8(text.data() + stop, &l))) stop += l;
      pos = std::max(pos, stop);
    }
    if (start_offset < start) out->push_back({start_offset, start, -1});
    out->push_back({start, stop, idx});
    start_offset = stop;
  }
  if (start_offset != text.size()) out->push_back({start_offset, text.size(), -1});
}

std::string Tokenizer::Impl::normalize_text(std::string_view text) const {
  std::string s(text);
  std::vector<std::pair<size_t, size_t>> found;
  for (size_t i = 0; i < m.normalizer.size(); ++i) {
    const NormalizerStep& n = m.normalizer[i];
    switch (n.kind) {
      case NormalizerStep::kNfc: s = normalize(s, NormalForm::kNfc); break;
      case NormalizerStep::kNfd: s = normalize(s, NormalForm::kNfd); break;
      case NormalizerStep::kNfkc: s = normalize(s, NormalForm::kNfkc); break;
      case NormalizerStep::kNfkd: s = normalize(s, NormalForm::kNfkd); break;
      case NormalizerStep::kPrepend:
        if (!s.empty()) s = n.text + s;
        break;
      case NormalizerStep::kReplace:
        if (normalizer_regex[i]) normalizer_regex[i]->find_all(s, &found);
        else find_string(s, n.text, &found);
        if (!found.empty()) s = replace_ranges(s, found, n.content);
        break;
    }
  }
  return s;
}

void Tokenizer::Impl::pre_tokenize(std::string text, bool at_start, std::vector<Piece>* pieces) const {
  pieces->clear();
  pieces->push_back({std::move(text), at_start});
  std::vector<Piece> next;
  std::vector<std::pair<size_t, size_t>> found, kept;
  std::vector<Range> ranges;
  for (size_t i = 0; i < m.pre_tokenizer.size(); ++i) {
    const PreTokenizerStep& s = m.pre_tokenizer[i];
    next.clear();
    for (Piece& p : *pieces) {
      std::string& t = p.text;
      SplitBehavior behavior = SplitBehavior::kIsolated;
      bool invert = false;
      switch (s.kind) {
        case PreTokenizerStep::kSplit:
          if (pre_regex[i]) pre_regex[i]->find_all(t, &found);
          else find_string(t, s.pattern, &found);
          behavior = s.behavior;
          invert = s.invert;
          break;
        case PreTokenizerStep::kByteLevel:
          if (s.add_prefix_space && (t.empty() || t[0] != ' ')) t.insert(t.begin(), ' ');
          if (!s.use_regex) {
            next.push_back(std::move(p));
            continue;
          }
          pre_regex[i]->find_all(t, &found);
          break;
        case PreTokenizerStep::kMetaspace: {
          find_string(t, " ", &found);
          if (!found.empty()) t = replace_ranges(t, found, s.replacement);
          bool starts = t.compare(0, s.replacement.size(), s.replacement) == 0;
          if (!starts && (s.prepend_scheme == PreTokenizerStep::Prepend::kAlways ||
                          (s.prepend_scheme == PreTokenizerStep::Prepend::kFirst && p.at_start)))
            t = s.replacement + t;
          if (!s.split) {
            next.push_back(std::move(p));
            continue;
          }
          find_string(t, s.replacement, &found);
          behavior = SplitBehavior::kMergedWithNext;
          break;
        }
        case PreTokenizerStep::kWhitespace:
          pre_regex[i]->find_all(t, &found);
          behavior = SplitBehavior::kRemoved;
          invert = true;
          break;
        case PreTokenizerStep::kWhitespaceSplit:
          find_chars(t, is_whitespace, &found);
          behavior = SplitBehavior::kRemoved;
          break;
        case PreTokenizerStep::kDigits:
          find_chars(t, is_numeric, &found);
          behavior = s.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous;
          break;
      }
      ranges_from_matches(t.size(), found, invert, &ranges);
      apply_behavior(ranges, behavior, &kept);
      for (auto [b, e] : kept)
        if (e > b) next.push_back({t.substr(b, e - b), p.at_start && b == 0});
    }
    std::swap(*pieces, next);
  }
}

// tokenizers models/bpe/model.rs merge_word and word.rs merge_all: initial symbols, then the
// lowest-ranked adjacent pair merged first (leftmost among equal ranks) through a min-heap;
// stale heap entries are recognized by the pair's merge result no longer matching.
void Tokenizer::Impl::bpe_word(std::string_view w, std::vector<int32_t>* out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(w.size());
  auto add = [&](int32_t id) {
    int32_t n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, n + 1, true});
  };
  if (m.byte_level) {
    for (unsigned char c : w) {
      if (byte_symbol[c] >= 0) add(byte_symbol[c]);
      else if (unk) add(*unk);   // no unk fusing in byte-level vocabularies that lack a byte
    }
  } else {
    std::optional<int32_t> pending_unk;
    std::string s;
    for (size_t i = 0; i < w.size();) {
      size_t len = utf8_len(static_cast<unsigned char>(w[i]));
      bool first = i == 0, last = i + len >= w.size();
      s.clear();
      if (!first) s += m.continuing_subword_prefix;
      s.append(w.substr(i, len));
      if (last) s += m.end_of_word_suffix;
      std::optional<int32_t> found;
      if (!char_symbol.empty()) {
        size_t l;
        if (const int32_t* id = char_symbol.find(decode_utf8(w.data() + i, &l))) found = *id;
      } else {
        auto it = vocab.find(s);
        if (it != vocab.end()) found = it->second;
      }
      i += len;
      if (found) {
        if (pending_unk) add(*pending_unk), pending_unk.reset();
        add(*found);
        continue;
      }
      if (m.byte_fallback) {
        bool all = true;
        for (unsigned char c : s) all = all && fallback_symbol[c] >= 0;
        if (all) {
          for (unsigned char c : s) add(fallback_symbol[c]);
          continue;
        }
      }
      if (unk) {
        if (pending_unk && !m.fuse_unk) add(*pending_unk);
        pending_unk = *unk;
      }
    }
    if (pending_unk) add(*pending_unk);
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  struct Merge {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  auto lookup = [&](int32_t a, int32_t b) { return merges.find(pair_key(a, b)); };
  std::vector<Merge> heap_storage;
  heap_storage.reserve(sym.size());
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> heap(std::greater<Merge>(), std::move(heap_storage));
  for (size_t i = 0; i + 1 < sym.size(); ++i)
    if (auto mg = lookup(sym[i].id, sym[i + 1].id)) heap.push({mg->rank, static_cast<int32_t>(i), mg->new_id});
  while (!heap.empty()) {
    Merge top = heap.top();
    heap.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    auto mg = lookup(left.id, right.id);
    if (!mg || mg->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0)
      if (auto p = lookup(sym[left.prev].id, left.id)) heap.push({p->rank, left.prev, p->new_id});
    if (left.next >= 0)
      if (auto n = lookup(left.id, sym[left.next].id)) heap.push({n->rank, top.pos, n->new_id});
  }
  for (const Symbol& s : sym)
    if (s.alive) out->push_back(s.id);
}

void Tokenizer::Impl::model_encode(std::string_view word, Cache& cache, std::vector<int32_t>* out) const {
  if (m.kind == ModelKind::kWordLevel) {
    auto it = vocab.find(std::string(word));
    if (it != vocab.end()) out->push_back(it->second);
    else if (unk) out->push_back(*unk);
    else fail(Errc::kTokenizerInvalid, m.path, "", "WordLevel: \"" + std::string(word) + "\" is not in the vocabulary and there is no unk_token");
    return;
  }
  if (!split_at_metaspace) return bpe_word_cached(word, cache, out);
  // Cut before each "▁" that follows a character other than "▁" (see build_bpe).
  size_t begin = 0;
  for (size_t pos = word.find(kMetaspace, 1); pos != std::string_view::npos; pos = word.find(kMetaspace, pos + 1)) {
    if (word.substr(0, pos).ends_with(kMetaspace)) continue;
    bpe_word_cached(word.substr(begin, pos - begin), cache, out);
    begin = pos;
  }
  bpe_word_cached(word.substr(begin), cache, out);
}

// One word through the cache, ignore_merges' whole-word lookup and the merge loop; the cache holds
// the word's final ids, so it answers before the lookup.
void Tokenizer::Impl::bpe_word_cached(std::string_view word, Cache& cache, std::vector<int32_t>* out) const {
  if (cache.find(word, out)) return;
  size_t before = out->size();
  bool whole = false;
  if (m.ignore_merges) {
    const auto& table = m.byte_level ? raw_vocab : vocab;
    auto it = table.find(std::string(word));
    if (it != table.end()) {
      out->push_back(it->second);
      whole = true;
    }
  }
  if (!whole) bpe_word(word, out);
  cache.insert(word, std::span<const int32_t>(out->data() + before, out->size() - before));
}

void Tokenizer::Impl::encode_text(std::string_view text, bool at_start, Cache& cache, std::vector<int32_t>* out) const {
  std::string normalized = normalize_text(text);
  std::vector<Segment> segs;
  split_added(normalized, normalized_matcher, normalized_tokens, &segs);
  std::vector<Piece> pieces;
  for (const Segment& s : segs) {
    if (s.token >= 0) {
      out->push_back(normalized_tokens[s.token]->id);
      continue;
    }
    pre_tokenize(normalized.substr(s.begin, s.end - s.begin), at_start && s.begin == 0, &pieces);
    for (const Piece& p : pieces) model_encode(p.text, cache, out);
  }
}

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view input, bool add_special, Cache& cache) const {
  std::string text = sanitize_utf8(input);
  std::vector<int32_t> ids;
  std::vector<Segment> segs;
  split_added(text, raw_matcher, raw_tokens, &segs);
  for (const Segment& s : segs) {
    std::string_view part(text.data() + s.begin, s.end - s.begin);
    if (s.token >= 0) ids.push_back(raw_tokens[s.token]->id);
    else if (sp) sp->encode(part, &ids);
    else encode_text(part, s.begin == 0, cache, &ids);
  }
  if (!add_special || m.post_template.empty()) return ids;
  std::vector<int32_t> out;
  out.reserve(ids.size() + 4);
  for (const TemplateItem& t : m.post_template) {
    if (t.is_sequence) out.insert(out.end(), ids.begin(), ids.end());
    else out.insert(out.end(), t.ids.begin(), t.ids.end());
  }
  return out;
}

namespace {

// The decoder chain of tokenizers (decoders/*.rs), each step on the list of token strings.
std::vector<std::string> run_decoder(const DecoderStep& d, std::vector<std::string> tokens) {
  std::vector<std::string> out;
  switch (d.kind) {
    case DecoderStep::kByteLevel: {
      // Every token's characters back to bytes (a token with a character outside the table is
      // taken as its UTF-8 bytes), the whole joined, then lossily back to text.
      const ByteLevelTable& t = byte_level_table();
      std::string bytes, raw;
      for (const std::string& tok : tokens) {
        if (t.to_bytes(tok, &raw)) bytes += raw;
        else bytes += tok;
      }
      out.push_back(sanitize_utf8(bytes));
      return out;
    }
    case DecoderStep::kReplace: {
      std::vector<std::pair<size_t, size_t>> found;
      for (std::string& tok : tokens) {
        find_string(tok, d.pattern, &found);
        out.push_back(found.empty() ? std::move(tok) : replace_ranges(tok, found, d.content));
      }
      return out;
    }
    case DecoderStep::kByteFallback: {
      std::string pending;
      size_t pending_count = 0;
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      auto flush = [&] {
        if (pending_count == 0) return;
        if (sanitize_utf8(pending) == pending) out.push_back(pending);
        else
          for (size_t k = 0; k < pending_count; ++k) out.push_back("\xEF\xBF\xBD");
        pending.clear();
        pending_count = 0;
      };
      for (std::string& tok : tokens) {
        int value = -1;
        // u8::from_str_radix(&token[3..5], 16) on "<0x..>": two hex digits, or "+" and one.
        if (tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>') {
          int h = hex(tok[3]), l = hex(tok[4]);
          if (h >= 0 && l >= 0) value = h * 16 + l;
          else if (tok[3] == '+' && l >= 0) value = l;
        }
        if (value >= 0) {
          pending.push_back(static_cast<char>(value));
          ++pending_count;
        } else {
          flush();
          out.push_back(std::move(tok));
        }
      }
      flush();
      return out;
    }
    case DecoderStep::kFuse: {
      std::string all;
      for (const std::string& tok : tokens) all += tok;
      out.push_back(std::move(all));
      return out;
    }
    case DecoderStep::kStrip: {
      for (const std::string& tok : tokens) {
        std::vector<std::pair<size_t, size_t>> chars;   // byte ranges of the characters
        for (size_t i = 0; i < tok.size();) {
          size_t len = utf8_len(static_cast<unsigned char>(tok[i]));
          chars.emplace_back(i, i + len);
          i += len;
        }
        auto is_content = [&](size_t k) {
          return tok.compare(chars[k].first, chars[k].second - chars[k].first, d.strip_content) == 0;
        };
        size_t start_cut = 0, stop_cut = chars.size();
        for (size_t k = 0; k < chars.size() && k < static_cast<size_t>(d.strip_start); ++k) {
          if (!is_content(k)) break;
          start_cut = k + 1;
        }
        for (size_t k = 0; k < static_cast<size_t>(d.strip_stop) && k < chars.size(); ++k) {
          size_t index = chars.size() - k - 1;
          if (!is_content(index)) break;
          stop_cut = index;
        }
        if (stop_cut <= start_cut) out.push_back("");
        else out.push_back(tok.substr(chars[start_cut].first, chars[stop_cut - 1].second - chars[start_cut].first));
      }
      return out;
    }
    case DecoderStep::kMetaspace: {
      for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string& tok = tokens[i];
        std::string s;
        for (size_t k = 0; k < tok.size();) {
          if (tok.compare(k, d.replacement.size(), d.replacement) == 0 && !d.replacement.empty()) {
            if (!(i == 0 && d.prepend_first)) s.push_back(' ');   // the first token loses every one
            k += d.replacement.size();
          } else {
            s.push_back(tok[k++]);
          }
        }
        out.push_back(std::move(s));
      }
      return out;
    }
  }
  return out;
}

}  // namespace

Tokenizer::Tokenizer(TokenizerModel model) : impl_(std::make_unique<Impl>(std::move(model))) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& path) { return Tokenizer(load_tokenizer_model(path)); }

std::optional<Tokenizer> Tokenizer::load_if_present(const std::string& dir) {
  std::optional<TokenizerModel> m = load_tokenizer_model_from(dir, directory_file_reader(dir));
  if (!m) return std::nullopt;
  return Tokenizer(std::move(*m));
}

const TokenizerModel& Tokenizer::model() const { return impl_->m; }

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  Cache cache;
  return impl_->encode(text, add_special_tokens, cache);
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(std::span<const std::string_view> texts,
                                                          bool add_special_tokens) const {
  Cache cache;
  std::vector<std::vector<int32_t>> out;
  out.reserve(texts.size());
  for (std::string_view t : texts) out.push_back(impl_->encode(t, add_special_tokens, cache));
  return out;
}

const std::string& Tokenizer::piece(int32_t id) const {
  const auto& v = impl_->m.vocab;
  return id >= 0 && static_cast<size_t>(id) < v.size() ? v[id] : impl_->empty;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& im = *impl_;
  const TokenizerModel& m = im.m;
  std::vector<int32_t> kept;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= m.vocab.size() || m.token_types[id] == TokenType::kUnused) continue;
    if (skip_special_tokens && im.special[id]) continue;
    kept.push_back(id);
  }
  if (im.sp) return im.sp->decode(kept);
  std::vector<std::string> tokens;
  tokens.reserve(kept.size());
  for (int32_t id : kept) tokens.push_back(m.vocab[id]);
  if (m.decoder.empty()) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  for (const DecoderStep& d : m.decoder) tokens = run_decoder(d, std::move(tokens));
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace ckpt::tok
