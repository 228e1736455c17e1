// Byte sizes as users write them. "5GB" is 5·10^9 bytes (as Hugging Face counts), "5GiB" 5·2^30,
// and a bare "5G" is 5GB (as llama.cpp's --split-max-size).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ckpt {

// Accepts an integer or decimal number followed by an optional unit: B, KB, MB, GB, TB or K, M, G, T
// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive. nullopt when malformed or zero.
std::optional<uint64_t> parse_byte_size(std::string_view text);
// "2.15 GB" style, decimal units, for summaries.
std::string format_bytes(uint64_t bytes);

}  // namespace ckpt
