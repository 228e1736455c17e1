#include "gguf_fixtures.h"

namespace ckpt::test {

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace

GgufVocab byte_level_vocab(uint32_t bos, uint32_t eos) {
  // openai/gpt-2 src/encoder.py bytes_to_unicode: printable bytes map to themselves, the others
  // to 256, 257, ... in byte order.
  GgufVocab v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    v.tokens.push_back(utf8(printable ? b : next++));
    v.types.push_back(1);
  }
  v.bos = bos;
  v.eos = eos;
  v.add_bos = false;
  return v;
}

}  // namespace ckpt::test
