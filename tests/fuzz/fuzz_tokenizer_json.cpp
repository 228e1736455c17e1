// libFuzzer target: a tokenizer.json in memory through the strict JSON parser (formats/
// strict_json.h), the typed field readers of lib/tokenizer, the encoder's table building (merges,
// regexes, added tokens), then an encode of hard text and a decode of its ids. Any ckpt::Error is
// a clean refusal; anything else (a crash, a sanitizer report, another exception) is a bug, and so
// is an id outside the vocabulary.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::string text(reinterpret_cast<const char*>(data), size);
    ckpt::tok::Tokenizer t(ckpt::tok::parse_tokenizer_json("fuzz/tokenizer.json", text, ""));
    const std::vector<int32_t> ids = t.encode("Hi <s> w\xc3\xb6rld\r\n\t 12345 \xf0\x9f\xa6\x99 e\xcc\x81\xff", true);
    for (int32_t id : ids)
      if (id < 0 || static_cast<size_t>(id) >= t.vocab_size()) __builtin_trap();
    (void)t.decode(ids, false);
  } catch (const ckpt::Error&) {
  }
  return 0;
}
