// libFuzzer target: a whole safetensors file in memory: the 8-byte length, the header through the
// strict JSON parser (duplicate keys, nesting bound) and every rule of the reference reader. Any
// ckpt::Error is a clean refusal; anything else (a crash, a sanitizer report, another exception) is
// a bug, and so is an accepted tensor whose bytes lie outside the input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > size - 8) return 0;  // read_safetensors_header refuses these before parsing
  try {
    const std::string_view header(reinterpret_cast<const char*>(data) + 8, n);
    ckpt::SafetensorsHeader h = ckpt::parse_safetensors_header("fuzz.safetensors", header, size);
    for (const auto& t : h.tensors)
      if (t.begin > t.end || t.end > size - h.data_start()) __builtin_trap();
  } catch (const ckpt::Error&) {
  }
  return 0;
}
