// SHA-256 (NIST FIPS 180-4), for the one place a published table is keyed by it: llama.cpp's
// pre-tokenizer hashes (conversion/base.py get_vocab_base_pre, sha256 of the token ids' text).
#pragma once

#include <string>
#include <string_view>

namespace ckpt {

// The digest of `data` as 64 lowercase hex digits (Python's hashlib.sha256(...).hexdigest()).
std::string sha256_hex(std::string_view data);

}  // namespace ckpt
