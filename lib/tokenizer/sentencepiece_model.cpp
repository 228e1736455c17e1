#include "tokenizer/sentencepiece_model.h"

#include <sentencepiece_processor.h>

#include <cstring>

#include "core/error.h"

namespace ckpt::tok {

namespace {

// A bounds-checked reader of the protobuf wire format, enough for ModelProto's repeated
// SentencePiece pieces = 1 {string piece = 1; float score = 2; Type type = 3 (default NORMAL)}
// (https://github.com/google/sentencepiece/blob/master/src/sentencepiece_model.proto).
class Wire {
 public:
  Wire(const std::string& path, std::string_view data) : path_(path), p_(data) {}
  bool done() const { return pos_ >= p_.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= p_.size()) bad("a varint runs past the end");
      uint8_t b = static_cast<uint8_t>(p_[pos_++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    bad("a varint is longer than 10 bytes");
  }
  std::string_view bytes(uint64_t n) {
    if (n > p_.size() - pos_) bad("a field runs past the end");
    std::string_view s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0: varint(); return;
      case 1: bytes(8); return;
      case 2: bytes(varint()); return;
      case 5: bytes(4); return;
      default: bad("wire type " + std::to_string(wire_type) + " is not supported");
    }
  }
  [[noreturn]] void bad(const std::string& why) const {
    fail(Errc::kTokenizerInvalid, path_, "", "not a SentencePiece model: " + why);
  }

 private:
  const std::string& path_;
  std::string_view p_;
  size_t pos_ = 0;
};

TokenType piece_type(const std::string& path, uint64_t t) {
  if (t < 1 || t > 6) fail(Errc::kTokenizerInvalid, path, "", "piece type " + std::to_string(t) + " is not 1..6");
  return static_cast<TokenType>(t);
}

}  // namespace

TokenizerModel load_sentencepiece_model(const std::string& path) {
  return parse_sentencepiece_model(path, read_tokenizer_file(path));
}

TokenizerModel parse_sentencepiece_model(const std::string& path, const std::string& data) {
  TokenizerModel m;
  m.path = path;
  m.kind = ModelKind::kSentencePiece;
  m.sentencepiece_proto = data;
  Wire top(path, data);
  while (!top.done()) {
    uint64_t tag = top.varint();
    if (tag >> 3 != 1 || (tag & 7) != 2) {
      top.skip(static_cast<uint32_t>(tag & 7));
      continue;
    }
    Wire piece(path, top.bytes(top.varint()));
    std::string text;
    float score = 0.0f;
    TokenType type = TokenType::kNormal;
    while (!piece.done()) {
      uint64_t t = piece.varint();
      if (t == (1 << 3 | 2)) {
        std::string_view s = piece.bytes(piece.varint());
        text.assign(s.data(), s.size());
      } else if (t == (2 << 3 | 5)) {
        std::memcpy(&score, piece.bytes(4).data(), 4);
      } else if (t == (3 << 3 | 0)) {
        type = piece_type(path, piece.varint());
      } else {
        piece.skip(static_cast<uint32_t>(t & 7));
      }
    }
    m.vocab.push_back(std::move(text));
    m.scores.push_back(score);
    m.token_types.push_back(type);
  }
  m.in_model_vocab.assign(m.vocab.size(), true);
  if (m.vocab.empty()) fail(Errc::kTokenizerInvalid, path, "", "not a SentencePiece model: no pieces");

  // The library must accept the file too, and agree on the pieces: it is what encodes.
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.LoadFromSerializedProto(data).ok() || sp.GetPieceSize() != static_cast<int>(m.vocab.size()))
    fail(Errc::kTokenizerInvalid, path, "", "SentencePiece does not load this model");
  auto id = [](int v) -> std::optional<int32_t> { return v >= 0 ? std::optional<int32_t>(v) : std::nullopt; };
  m.bos_id = id(sp.bos_id());
  m.eos_id = id(sp.eos_id());
  m.unk_id = id(sp.unk_id());
  m.pad_id = id(sp.pad_id());
  if (m.unk_id) m.unk_token = m.vocab[*m.unk_id];
  m.byte_fallback = false;
  for (TokenType t : m.token_types)
    if (t == TokenType::kByte) m.byte_fallback = true;
  if (m.bos_id) m.post_template.push_back({false, {*m.bos_id}});
  m.post_template.push_back({true, {}});
  // Control and user-defined pieces are the added tokens: matched in text before SentencePiece
  // runs (as transformers' slow LlamaTokenizer splits on them).
  for (size_t i = 0; i < m.vocab.size(); ++i) {
    if (m.token_types[i] != TokenType::kControl && m.token_types[i] != TokenType::kUserDefined) continue;
    if (m.vocab[i].empty()) continue;
    AddedToken a;
    a.id = static_cast<int32_t>(i);
    a.content = m.vocab[i];
    a.special = m.token_types[i] == TokenType::kControl;
    m.added_tokens.push_back(std::move(a));
  }
  return m;
}

SentencePieceRunner::SentencePieceRunner(const std::string& path, const std::string& proto)
    : path_(path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  auto status = sp_->LoadFromSerializedProto(proto);
  if (!status.ok()) fail(Errc::kTokenizerInvalid, path, "", "SentencePiece: " + std::string(status.ToString()));
}

SentencePieceRunner::~SentencePieceRunner() = default;

void SentencePieceRunner::encode(std::string_view text, std::vector<int32_t>* out) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  if (!status.ok()) fail(Errc::kTokenizerInvalid, path_, "", "SentencePiece: " + std::string(status.ToString()));
  out->insert(out->end(), ids.begin(), ids.end());
}

std::string SentencePieceRunner::decode(const std::vector<int32_t>& ids) const {
  std::vector<int> v(ids.begin(), ids.end());
  std::string text;
  auto status = sp_->Decode(v, &text);
  if (!status.ok()) fail(Errc::kTokenizerInvalid, path_, "", "SentencePiece: " + std::string(status.ToString()));
  return text;
}

}  // namespace ckpt::tok
