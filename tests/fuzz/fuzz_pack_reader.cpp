// libFuzzer target: the packed container's strict parser (prefix, JSON header, regions, frame
// table, digests) and, for whatever it accepts, decoding every byte of every file inside, with
// decompression bounded by the declared sizes. Any ckpt::Error is a clean refusal; anything else
// (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/error.h"
#include "formats/packed_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto c = ckpt::PackedContainer::from_source(std::make_unique<ckpt::MemorySource>(data, size, "fuzz.ckptpack"));
    for (const auto& m : c->index().members) {
      if (m.size > (64u << 20)) continue;  // accepted sizes are bounded by the frames' declared lengths
      std::vector<uint8_t> out(m.size);
      ckpt::PackedMemberSource(c, m).read(0, m.size, out.data());
    }
  } catch (const ckpt::Error&) {
  }
  return 0;
}
