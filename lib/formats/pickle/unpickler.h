// A restricted unpickler: a pickle stack machine that accepts exactly the opcodes torch's
// weights_only loader accepts, resolves GLOBAL only through the allow-list (allowed_globals.h),
// lets REDUCE/NEWOBJ/BUILD act only on allowed globals with checked arguments, and bounds the
// stack, the mark stack, the memo and every length. Anything else is refused with an error that
// names the opcode or global and its byte offset. Nothing from the input is executed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/pickle/value.h"

namespace ckpt::pickle {

struct Limits {
  size_t max_stack = 1u << 20;   // values on the stack, marks included
  size_t max_memo = 1u << 22;    // memo entries
  size_t max_string = 1u << 26;  // bytes in one string
  // Memory: what the objects built so far hold may not pass memory_floor + memory_per_byte for
  // every pickle byte read. A state dict costs far less per byte than that (measured on real
  // torch.save pickles: see test_hostile_inputs), while one-byte opcodes that each build a tuple
  // cost hundreds of bytes apiece (2M nested tuples, 2 MB of pickle, took 742 MB).
  size_t memory_floor = 64u << 20;
  size_t memory_per_byte = 128;
};

struct Source {
  const uint8_t* data;
  size_t size;
  std::string file;   // for errors: the file the pickle came from
  std::string where;  // for errors: "data.pkl" or "pickle stream"
};

// Loads one pickle starting at byte `start` of `src` (a legacy stream holds several back to back).
// Returns the top-level object; *end receives the offset just past STOP. Storage persistent ids
// become Kind::kStorage objects (one per key, shared).
const Object* unpickle(const Source& src, size_t start, Arena& arena, size_t* end = nullptr,
                       const Limits& limits = {});

}  // namespace ckpt::pickle
