// `ckpt inspect`: what a checkpoint holds — files, tensors, totals per dtype, parameter count and
// architecture — as a JSON document or a readable table.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"

namespace ckpt {

ojson inspect_report(const Checkpoint& ck);
std::string inspect_text(const ojson& report);

}  // namespace ckpt
