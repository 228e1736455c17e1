// `ckpt convert`: a PyTorch checkpoint (.bin/.pt/.pth file, or a Hugging Face directory holding
// pytorch_model.bin or its shards and index) to safetensors in Hugging Face layout. Every tensor
// is written as torch's tensor.contiguous() holds it: contiguous tensors are verbatim byte ranges
// (copied in the kernel), strided views are gathered in row-major order. Exact aliases dropped
// while opening (tied weights) are recorded in each file's metadata as {dropped: kept}.
#pragma once

#include "checkpoint/checkpoint.h"
#include "plan/plan.h"

namespace ckpt {

Plan plan_convert(const Checkpoint& ck, uint64_t max_shard_bytes);

}  // namespace ckpt
