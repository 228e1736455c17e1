// Single-thread tokenizer throughput on the benchmark text (tests/tokenizer/bench_text.py): the
// documents (split at U+001E) encoded with add_special_tokens=False, as make_golden.py times
// Hugging Face's encode_batch_fast; several runs, the median reported.
//   ckpt_bench_tokenizer TOKENIZER_DIR TEXT_FILE [RUNS] [IDS_OUT]
// IDS_OUT receives every id as little-endian uint32, documents in order (its sha256 is the
// golden's bench.ids_sha256).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_DIR TEXT_FILE [RUNS] [IDS_OUT]\n", argv[0]);
    return 2;
  }
  try {
    const int runs = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
    auto t0 = std::chrono::steady_clock::now();
    ckpt::tok::Tokenizer t = ckpt::tok::Tokenizer::load(argv[1]);
    double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string text = ckpt::read_text_file(argv[2]);
    std::vector<std::string_view> docs;
    for (size_t pos = 0;;) {
      size_t sep = text.find('\x1e', pos);
      docs.emplace_back(text.data() + pos, (sep == std::string::npos ? text.size() : sep) - pos);
      if (sep == std::string::npos) break;
      pos = sep + 1;
    }
    // Wall time, and the thread's CPU time: on a machine shared with other work the CPU time is
    // what one free core would take.
    auto cpu_now = [] {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return ts.tv_sec + ts.tv_nsec * 1e-9;
    };
    std::vector<double> seconds, cpu_seconds;
    std::vector<std::vector<int32_t>> ids;
    for (int r = 0; r < runs; ++r) {
      auto s = std::chrono::steady_clock::now();
      double c = cpu_now();
      ids = t.encode_batch(docs, false);
      cpu_seconds.push_back(cpu_now() - c);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
    }
    size_t n_ids = 0;
    for (const auto& d : ids) n_ids += d.size();
    std::vector<double> sorted = seconds;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted[sorted.size() / 2];
    std::printf("tokenizer %s: load %.2f s; %zu bytes, %zu documents, %zu ids; runs:", argv[1], load_s, text.size(),
                docs.size(), n_ids);
    for (double s : seconds) std::printf(" %.3f", s);
    std::sort(cpu_seconds.begin(), cpu_seconds.end());
    std::printf(" s; median %.3f MB/s (one thread); CPU time median %.3f s = %.3f MB/s\n", text.size() / median / 1e6,
                cpu_seconds[cpu_seconds.size() / 2], text.size() / cpu_seconds[cpu_seconds.size() / 2] / 1e6);
    if (argc > 4) {
      std::string bytes;
      bytes.reserve(n_ids * 4);
      for (const auto& d : ids)
        for (int32_t id : d)
          for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<char>((static_cast<uint32_t>(id) >> (8 * k)) & 0xFF));
      ckpt::write_text_file(argv[4], bytes);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt_bench_tokenizer: %s\n", e.what());
    return 1;
  }
}
