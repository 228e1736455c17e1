// Single-core throughput of the INT4 and Marlin CPU ops in ns per weight element, next to a
// memcpy of the same source bytes (the floor a streaming producer pays anyway). A 4096 x 8192
// BF16 weight (64 MiB, beyond the caches), processed in the blocks a producer would hand over.
// Prints one "BENCH" line per op: median of 7 runs, in thread CPU time.
//
//   ckpt_bench_int4 [--rows 4096] [--cols 8192]
#include <algorithm>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ops/float_convert.h"
#include "ops/int4_quant.h"
#include "ops/marlin_layout.h"

using namespace ckpt;
using namespace ckpt::ops;

namespace {

// This thread's CPU time: the 2-core machine is shared, and wall time there counts the waits.
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median_seconds(const std::function<void()>& fn) {
  std::vector<double> t;
  fn();  // warm-up (page faults)
  for (int i = 0; i < 7; ++i) {
    const double a = thread_seconds();
    fn();
    t.push_back(thread_seconds() - a);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const char* name, double secs, uint64_t elements) {
  std::printf("BENCH %-34s %8.3f ms  %6.3f ns/element\n", name, secs * 1e3, secs * 1e9 / static_cast<double>(elements));
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t n = 4096, k = 8192;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--rows") n = std::stoull(argv[i + 1]);
    if (std::string(argv[i]) == "--cols") k = std::stoull(argv[i + 1]);
  }
  std::vector<uint16_t> w(n * k);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (auto& x : w) x = f32_to_bf16(normal(rng));
  const uint8_t* src = reinterpret_cast<const uint8_t*>(w.data());
  const uint64_t elements = n * k, kw = k / 8;
  std::vector<uint16_t> copy(n * k);
  report("memcpy of the bf16 source", median_seconds([&] { std::memcpy(copy.data(), w.data(), 2 * elements); }), elements);

  std::vector<uint32_t> words(n * kw), out(n * kw);
  const uint64_t block_rows = 64;  // a producer's stripe: 64 rows x all of K (1 MiB of BF16)
  for (bool sym : {true, false}) {
    const Int4Scheme s{Int4Format::kCompressedTensors, 128, sym, DType::BF16};
    const Int4Geometry geo = int4_geometry(s, n, k);
    std::vector<Int4Params> params(n * geo.groups);
    // Every CPU path this machine has (the last is the one quantize uses).
    for (Int4Path path : int4_paths_on_this_cpu()) {
      auto quantize = [&](Fp8ErrorStats* st) {
        for (uint64_t r = 0; r < n; r += block_rows)
          int4_quantize_fast_on(path, s, geo, {src + r * k * 2, DType::BF16, k, r, block_rows, 0, k}, 0, k,
                                params.data() + r * geo.groups, words.data() + r * kw, kw, st);
      };
      const std::string name = std::string("int4 quantize g128 ") + (sym ? "sym" : "asym") + " " + int4_path_name(path);
      if (sym) {
        Fp8ErrorStats st;
        report((name + " + error stats").c_str(), median_seconds([&] { quantize(&st); }), elements);
      }
      report(name.c_str(), median_seconds([&] { quantize(nullptr); }), elements);
    }
  }
  // Quantize + layout in one pass (ops::int4_quantize_qweight), as the CPU engine runs a strip,
  // against the K-packed quantize above plus the transforms below.
  for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq}) {
    const bool sym = f == Int4Format::kGptq;
    const Int4Scheme s{f, 128, sym, DType::F16};
    const Int4Geometry geo = int4_geometry(s, n, k);
    std::vector<Int4Params> params(n * geo.groups);
    const uint64_t strip = 256;  // rows of a 2 MiB BF16 strip at K = 4096
    Fp8ErrorStats st;
    report((std::string("int4 quantize g128 ") + (sym ? "sym" : "asym") + " -> " + int4_format_name(f) +
            " qweight + stats").c_str(),
           median_seconds([&] {
             for (uint64_t r = 0; r < n; r += strip)
               int4_quantize_qweight(s, geo, {src + r * k * 2, DType::BF16, k, r, std::min(strip, n - r), 0, k},
                                     params.data() + r * geo.groups, out.data(), &st);
           }),
           elements);
  }
  report("gptq transpose (words -> qweight)",
         median_seconds([&] { int4_words_to_gptq(words.data(), kw, n, kw, out.data(), n); }), elements);
  report("awq pack (words -> qweight)",
         median_seconds([&] { int4_words_to_awq(words.data(), kw, n, kw, out.data(), n / 8); }), elements);

  // Marlin relayout of a [N=n, K=k] weight: out is [K/16, 2N]. Source qweight [K/8, N].
  std::vector<uint32_t> qweight(kw * n), awq(k * (n / 8)), marlin(k / 16 * 2 * n);
  int4_words_to_gptq(words.data(), kw, n, kw, qweight.data(), n);
  int4_words_to_awq(words.data(), kw, n, kw, awq.data(), n / 8);
  const uint64_t step = 64;  // K-tiles per call (a 1 MiB output chunk for N = 4096)
  auto relayout = [&](MarlinSource source) {
    for (uint64_t t = 0; t < k / 16; t += step) {
      const uint64_t t1 = std::min(k / 16, t + step);
      const uint32_t* p = source == MarlinSource::kGptq ? qweight.data() + 2 * t * n
                          : source == MarlinSource::kAwq ? awq.data() + 16 * t * (n / 8)
                                                         : words.data() + 2 * t;
      const uint64_t stride = source == MarlinSource::kGptq ? n : source == MarlinSource::kAwq ? n / 8 : kw;
      marlin_repack(source, p, stride, n, k, t, t1, marlin.data() + t * 2 * n);
    }
  };
  report("memcpy of the packed int4 bytes",
         median_seconds([&] { std::memcpy(marlin.data(), qweight.data(), 4 * qweight.size()); }), elements);
  report("marlin repack from gptq", median_seconds([&] { relayout(MarlinSource::kGptq); }), elements);
  report("marlin repack from awq", median_seconds([&] { relayout(MarlinSource::kAwq); }), elements);
  report("marlin repack from compressed-tensors", median_seconds([&] { relayout(MarlinSource::kCompressedTensors); }), elements);
  report("marlin unpack to gptq", median_seconds([&] {
           marlin_unpack(MarlinSource::kGptq, marlin.data(), 2 * n, n, k, 0, k / 16, qweight.data(), n);
         }),
         elements);
  return 0;
}
