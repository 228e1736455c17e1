// Measures for `ckpt pack` (BENCHMARKS.md, tests/bench/bench_pack.sh):
//   ckpt_bench_pack bound DIR      the order-0 bound of a checkpoint's bytes: per tensor, the
//                                  exponent field's order-0 entropy plus the sign and mantissa
//                                  bits stored raw (bf16: H(exp8) + 8 bits, f16: H(exp5) + 11,
//                                  f32: H(exp8) + 24); other dtypes at their byte entropy; all
//                                  non-tensor bytes raw. Prints original and bound bytes.
//   ckpt_bench_pack decode PACKED  decodes every file of a packed checkpoint into memory on this
//                                  one thread; prints bytes and seconds.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "commands/rechunk.h"
#include "formats/packed_source.h"
#include "plan/source_reader.h"

using namespace ckpt;

namespace {

double entropy_bits(const std::vector<uint64_t>& hist, uint64_t n) {
  double h = 0;
  for (uint64_t c : hist)
    if (c) h -= static_cast<double>(c) / static_cast<double>(n) * std::log2(static_cast<double>(c) / static_cast<double>(n));
  return h;
}

int bound(const std::string& dir) {
  Checkpoint ck = open_checkpoint(dir);
  SourceReader reader(source_paths(ck));
  uint64_t file_bytes = 0;
  for (const auto& f : ck.files) file_bytes += f.size;
  double bound_bits = 0;
  uint64_t tensor_bytes = 0;
  std::vector<uint8_t> buf;
  for (const auto& t : ck.tensors) {
    const uint64_t n = t.view.numel();
    buf.resize(t.nbytes());
    reader.gather(t.view, 0, n, buf.data());
    tensor_bytes += t.nbytes();
    std::vector<uint64_t> hist(256, 0);
    unsigned raw_bits = 0;
    if (t.dtype() == DType::BF16) {
      for (uint64_t i = 0; i < n; ++i) ++hist[(static_cast<unsigned>(buf[2 * i + 1]) << 1 | buf[2 * i] >> 7) & 0xff];
      raw_bits = 8;
    } else if (t.dtype() == DType::F16) {
      for (uint64_t i = 0; i < n; ++i) ++hist[(buf[2 * i + 1] >> 2) & 0x1f];
      raw_bits = 11;
    } else if (t.dtype() == DType::F32) {
      for (uint64_t i = 0; i < n; ++i) ++hist[(static_cast<unsigned>(buf[4 * i + 3]) << 1 | buf[4 * i + 2] >> 7) & 0xff];
      raw_bits = 24;
    } else {
      for (uint8_t b : buf) ++hist[b];
      bound_bits += entropy_bits(hist, buf.size()) * static_cast<double>(buf.size());
      continue;
    }
    bound_bits += (entropy_bits(hist, n) + raw_bits) * static_cast<double>(n);
  }
  const double bound_bytes = bound_bits / 8 + static_cast<double>(file_bytes - tensor_bytes);
  std::printf("weight_file_bytes %llu\nbound_bytes %.0f\nbound_ratio %.4f\n", static_cast<unsigned long long>(file_bytes),
              bound_bytes, static_cast<double>(file_bytes) / bound_bytes);
  return 0;
}

int decode(const std::string& dir) {
  auto c = PackedContainer::open(dir + "/" + kPackFileName);
  std::vector<uint8_t> buf(4 << 20);
  uint64_t bytes = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& m : c->index().members) {
    PackedMemberSource s(c, m);
    for (uint64_t off = 0; off < m.size; off += buf.size()) {
      const uint64_t n = std::min<uint64_t>(buf.size(), m.size - off);
      s.read(off, n, buf.data());
      bytes += n;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("decoded_bytes %llu\nseconds %.3f\ngb_per_s %.3f\n", static_cast<unsigned long long>(bytes), secs,
              static_cast<double>(bytes) / secs / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: ckpt_bench_pack bound DIR | decode PACKED_DIR\n");
    return 2;
  }
  try {
    if (std::strcmp(argv[1], "bound") == 0) return bound(argv[2]);
    if (std::strcmp(argv[1], "decode") == 0) return decode(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt_bench_pack: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: ckpt_bench_pack bound DIR | decode PACKED_DIR\n");
  return 2;
}
