// The ggml block encoders' speed for BENCHMARKS.md (the export itself is timed through the CLI
// by bench_gguf.sh):
//   ckpt_bench_gguf LIBGGML_BASE [MB]
//     single-core encode speed of each ggml type, ckpt's encode_row beside ggml's own reference
//     quantizer (quantize_row_*_ref, what llama-quantize runs without an importance matrix),
//     called from node-llama-cpp's libggml-base.so on the same float32 rows.
#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/ggml_blocks.h"

using namespace ckpt;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int blocks(int argc, char** argv) {
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  const uint64_t mb = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  const uint64_t n = mb * (1u << 20) / 4 / 256 * 256;
  std::vector<float> x(n);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (auto& v : x) v = nd(rng);
  struct Row {
    ops::GgmlType t;
    const char* sym;
  };
  const Row rows[] = {{ops::GgmlType::Q8_0, "quantize_row_q8_0_ref"}, {ops::GgmlType::Q4_0, "quantize_row_q4_0_ref"},
                      {ops::GgmlType::Q4_1, "quantize_row_q4_1_ref"}, {ops::GgmlType::Q4_K, "quantize_row_q4_K_ref"},
                      {ops::GgmlType::Q5_K, "quantize_row_q5_K_ref"}, {ops::GgmlType::Q6_K, "quantize_row_q6_K_ref"}};
  std::printf("%-6s %14s %14s %8s\n", "type", "ggml_MB/s", "ckpt_MB/s", "speedup");
  for (const auto& r : rows) {
    using Fn = void (*)(const float*, void*, int64_t);
    auto fn = reinterpret_cast<Fn>(dlsym(h, r.sym));
    std::vector<uint8_t> a(*ops::ggml_nbytes(r.t, n, 1)), b(a.size());
    auto t0 = std::chrono::steady_clock::now();
    fn(x.data(), a.data(), static_cast<int64_t>(n));
    const double tg = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    ops::encode_row(r.t, x.data(), b.data(), n);
    const double tc = seconds_since(t0);
    std::printf("%-6s %14.1f %14.1f %8.2f%s\n", std::string(ops::ggml_type_info(r.t).name).c_str(), n * 4 / tg / 1e6,
                n * 4 / tc / 1e6, tg / tc, a == b ? "" : "  BYTES DIFFER");
  }
  dlclose(h);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ckpt_bench_gguf LIBGGML_BASE [MB]\n");
    return 2;
  }
  return blocks(argc, argv);
}
