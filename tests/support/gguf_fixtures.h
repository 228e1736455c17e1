// GGUF fixtures for tests: a byte-level "gpt2" vocabulary of the 256 byte symbols (GPT-2's
// bytes_to_unicode, as every byte-level tokenizer.json stores them) with no merges, which
// llama.cpp loads for any model whose embedding has at least 256 rows; logits tests feed token
// ids directly, so the vocabulary only has to be valid.
#pragma once

#include "commands/gguf.h"

namespace ckpt::test {

GgufVocab byte_level_vocab(uint32_t bos, uint32_t eos);

}  // namespace ckpt::test
