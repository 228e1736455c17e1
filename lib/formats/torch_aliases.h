// Exact aliases in a torch file: several names for one view (same storage, offset, dtype, shape,
// strides), as tied weights are saved. safetensors cannot hold shared memory, so like
// transformers' save_pretrained and safetensors' save_model one name is kept and the others are
// dropped and recorded ({dropped: kept}); loaders re-tie them. Views that merely share a storage
// (disjoint or partly overlapping) are not aliases: each is written as its own tensor.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "formats/torch_state_dict.h"

namespace ckpt {

struct AliasChoice {
  std::vector<TorchTensor> kept;                              // in the original order
  std::vector<std::pair<std::string, std::string>> dropped;   // {dropped name, kept name}
};

// Which name of an alias group is kept: transformers drops the tied output embedding
// (`_tied_weights_keys`, "lm_head.weight") and keeps the input embedding; for any other group
// the first name in sorted order is kept (safetensors' _remove_duplicate_names). When the
// config says tie_word_embeddings is false, a loader would not re-tie lm_head.weight, so it is
// kept as its own copy instead. keep_all (--keep-aliases) keeps every name.
AliasChoice choose_aliases(std::vector<TorchTensor> tensors, std::optional<bool> tie_word_embeddings, bool keep_all);

}  // namespace ckpt
