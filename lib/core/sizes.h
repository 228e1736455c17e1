// Byte sizes as users write them, and sizes, rates and counts as summaries print them. "5GB" is 5·10^9 bytes (as Hugging Face counts), "5GiB" 5·2^30,
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
// A rate in format_bytes' units ("512.00 KB/s", "2.15 GB/s"); empty when there is no meaningful
// rate (no bytes, or too short a time to measure), so a summary never reads "0.00 GB/s".
std::string format_rate(uint64_t bytes, double seconds);
// A count with its noun in the right number: "1 tensor", "3 tensors" (`plural` defaults to the
// singular + "s").
std::string count_of(uint64_t n, std::string_view singular, std::string_view plural = {});

}  // namespace ckpt
