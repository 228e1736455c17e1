// libFuzzer target: the restricted unpickler on arbitrary bytes, as a sequence of pickles (the
// legacy stream holds several), and the state-dict interpretation of each result with every
// storage placed at a fake location of its declared size. Any ckpt::Error is a clean refusal.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/pickle/unpickler.h"
#include "formats/torch_state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ckpt::pickle::Arena arena;
  ckpt::pickle::Limits limits;
  limits.max_stack = 1 << 12;  // small bounds reach the limit paths with short inputs
  limits.max_memo = 1 << 12;
  limits.max_string = 1 << 16;
  ckpt::pickle::Source src{data, size, "fuzz.pkl", "pickle"};
  size_t pos = 0;
  try {
    for (int i = 0; i < 5 && pos < size; ++i) {
      const ckpt::pickle::Object* root = ckpt::pickle::unpickle(src, pos, arena, &pos, limits);
      try {
        ckpt::read_state_dict(root, "fuzz.pkl", i % 2 ? "state_dict" : "", 0, [](const ckpt::pickle::StorageRef& s) {
          auto n = ckpt::checked_nbytes(s.dtype, s.numel);
          if (!n) ckpt::fail(ckpt::Errc::kTorchInvalid, "fuzz.pkl", "", "storage too large");
          return ckpt::StorageLocation{4096, *n};
        });
      } catch (const ckpt::Error&) {
      }
    }
  } catch (const ckpt::Error&) {
  }
  return 0;
}
