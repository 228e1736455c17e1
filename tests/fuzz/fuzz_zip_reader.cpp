// libFuzzer target: the strict zip reader (central directory, ZIP64, local headers, overlap
// checks) and the CRC-32 pass over whatever records it accepts. Any ckpt::Error is a clean
// refusal; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/zip_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ckpt::MemorySource src(data, size, "fuzz.zip");
  try {
    ckpt::ZipArchive zip = ckpt::read_zip_directory(src);
    for (const auto& r : zip.records)
      if (r.data_offset > size || r.size > size - r.data_offset) __builtin_trap();  // accepted ranges lie inside
    ckpt::verify_zip_crcs(src, zip);
  } catch (const ckpt::Error&) {
  }
  return 0;
}
