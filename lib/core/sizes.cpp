#include "core/sizes.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>

namespace ckpt {

std::optional<uint64_t> parse_byte_size(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string number(text.substr(0, i));
  if (number.empty() || number == "." || number.find('.') != number.rfind('.')) return std::nullopt;
  std::string unit;
  for (char c : text.substr(i))
    if (c != ' ') unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  long double mult;
  // A bare K/M/G/T is decimal, as llama.cpp's gguf-split reads --split-max-size "4G" (1000^3;
  // examples/gguf-split/gguf-split.cpp, split_str_to_n_bytes).
  if (unit.size() <= 1 && unit != "b") unit += 'b';
  if (unit == "b") mult = 1;
  else if (unit == "kb") mult = 1e3L;
  else if (unit == "mb") mult = 1e6L;
  else if (unit == "gb") mult = 1e9L;
  else if (unit == "tb") mult = 1e12L;
  else if (unit == "kib") mult = 1024.0L;
  else if (unit == "mib") mult = 1024.0L * 1024;
  else if (unit == "gib") mult = 1024.0L * 1024 * 1024;
  else if (unit == "tib") mult = 1024.0L * 1024 * 1024 * 1024;
  else return std::nullopt;
  long double v = std::stold(number) * mult;
  if (!(v >= 1) || v > 1.8e19L) return std::nullopt;
  return static_cast<uint64_t>(std::llroundl(v));
}

std::string format_bytes(uint64_t bytes) {
  char buf[32];
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

std::string format_rate(uint64_t bytes, double seconds) {
  // Below a millisecond the clock says more about the machine's load than about the work.
  if (bytes == 0 || !(seconds >= 1e-3)) return "";
  return format_bytes(static_cast<uint64_t>(static_cast<double>(bytes) / seconds)) + "/s";
}

std::string count_of(uint64_t n, std::string_view singular, std::string_view plural) {
  std::string out = std::to_string(n) + " ";
  if (n == 1) return out.append(singular);
  if (plural.empty()) return out.append(singular).append("s");
  return out.append(plural);
}

}  // namespace ckpt
