// Measures for `ckpt pack` (BENCHMARKS.md, tests/bench/bench_pack.sh):
//   ckpt_bench_pack bound DIR      the order-0 bound of a checkpoint's bytes: per tensor, the
//                                  exponent field's order-0 entropy plus the sign and mantissa
//                                  bits stored raw (bf16: H(exp8) + 8 bits, f16: H(exp5) + 11,
//                                  f32: H(exp8) + 24); other dtypes at their byte entropy; all
//                                  non-tensor bytes raw. Prints original and bound bytes.
//   ckpt_bench_pack decode PACKED  decodes every file of a packed checkpoint into memory on this
//                                  one thread; prints bytes and seconds.
//   ckpt_bench_pack planes DIR     exponent-plane encoders on one thread, each on the same planes
//                                  (every 1 MiB group of DIR's bf16 tensors split as pack does,
//                                  its 512 KiB high-byte plane; DIR "synthetic": 64 planes of
//                                  make_synthetic's std-0.02 values): libzstd with pack's exponent
//                                  settings, libzstd's ZSTD_compressSequences with no matches, and
//                                  pack's own Huffman-literals frame writer. Prints MB/s and ratio
//                                  per encoder; every frame is decoded by libzstd and compared.
#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "checkpoint/checkpoint.h"
#include "commands/rechunk.h"
#include "formats/pack_codec.h"
#include "formats/packed_source.h"
#include "formats/zstd_literals.h"
#include "plan/source_reader.h"
#include "synthetic_weight.h"

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

// make_synthetic's weights as bf16 (truncated, as make_synthetic writes them).
uint16_t synthetic_bf16(uint64_t i, uint64_t seed) {
  const float s = bench::synthetic_weight(i, seed);
  uint32_t bits;
  std::memcpy(&bits, &s, 4);
  return static_cast<uint16_t>(bits >> 16);
}

std::vector<std::vector<uint8_t>> exponent_planes(const std::string& dir) {
  std::vector<std::vector<uint8_t>> planes;
  std::vector<uint8_t> split(kPackGroupBytes);
  auto add_group = [&](const uint8_t* group, uint64_t len) {
    split_planes(group, len / 2, 2, split.data());
    planes.emplace_back(split.begin() + static_cast<std::ptrdiff_t>(len / 2), split.begin() + static_cast<std::ptrdiff_t>(len));
  };
  if (dir == "synthetic") {
    std::vector<uint16_t> v(kPackGroupBytes / 2);
    for (uint64_t g = 0; g < 64; ++g) {
      for (uint64_t i = 0; i < v.size(); ++i) v[i] = synthetic_bf16(g * v.size() + i, 1234);
      add_group(reinterpret_cast<const uint8_t*>(v.data()), kPackGroupBytes);
    }
    return planes;
  }
  Checkpoint ck = open_checkpoint(dir);
  SourceReader reader(source_paths(ck));
  std::vector<uint8_t> buf;
  for (const auto& t : ck.tensors) {
    if (t.dtype() != DType::BF16) continue;
    buf.resize(t.nbytes());
    reader.gather(t.view, 0, t.view.numel(), buf.data());
    for (uint64_t at = 0; at < buf.size(); at += kPackGroupBytes)
      add_group(buf.data() + at, std::min<uint64_t>(kPackGroupBytes, buf.size() - at));
  }
  return planes;
}

// pack's exponent-plane context before the Huffman-literals writer (pack_codec.cpp, level 1).
ZSTD_CCtx* exponent_cctx() {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, 8);
  ZSTD_CCtx_setParameter(c, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
  ZSTD_CCtx_setParameter(c, ZSTD_c_minMatch, 7);
  ZSTD_CCtx_setParameter(c, ZSTD_c_targetLength, 8);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  return c;
}

ZSTD_CCtx* sequences_cctx() {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
  ZSTD_CCtx_setParameter(c, ZSTD_c_blockDelimiters, ZSTD_sf_explicitBlockDelimiters);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  return c;
}

double thread_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Times `encode` over every plane (this thread's CPU time, best of 3 passes: the dev VM is shared,
// and CPU time is what pack's budget is), each plane copied to a buffer first so that it is in the
// cache as in pack; then decodes each frame with libzstd.
template <class Encode>
void time_encoder(const char* name, const std::vector<std::vector<uint8_t>>& planes, Encode encode) {
  std::vector<std::vector<uint8_t>> out(planes.size());
  std::vector<uint8_t> hot;
  uint64_t in_bytes = 0, out_bytes = 0;
  double best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    in_bytes = out_bytes = 0;
    double secs = 0;
    for (size_t i = 0; i < planes.size(); ++i) {
      // Each plane from the cache, as pack's plane is (split_planes just wrote it), not from DRAM.
      hot = planes[i];
      out[i].resize(ZSTD_compressBound(hot.size()) + 64);
      const double t0 = thread_seconds();
      const size_t r = encode(hot, out[i]);
      secs += thread_seconds() - t0;
      out[i].resize(r);
      in_bytes += planes[i].size();
      out_bytes += r;
    }
    best = std::min(best, secs);
  }
  std::vector<uint8_t> back;
  for (size_t i = 0; i < planes.size(); ++i) {
    back.assign(planes[i].size(), 0);
    const size_t r = ZSTD_decompress(back.data(), back.size(), out[i].data(), out[i].size());
    if (ZSTD_isError(r) || r != planes[i].size() || back != planes[i])
      throw std::runtime_error(std::string(name) + ": plane " + std::to_string(i) + " does not decode to its bytes" +
                               (ZSTD_isError(r) ? std::string(" (") + ZSTD_getErrorName(r) + ")" : ""));
  }
  std::vector<uint8_t> sink(kPackGroupBytes);
  ZSTD_DCtx* d = ZSTD_createDCtx();
  double dsecs = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    const double t0 = thread_seconds();
    for (size_t i = 0; i < planes.size(); ++i) ZSTD_decompressDCtx(d, sink.data(), sink.size(), out[i].data(), out[i].size());
    dsecs = std::min(dsecs, thread_seconds() - t0);
  }
  ZSTD_freeDCtx(d);
  std::printf("%-10s planes %zu bytes %llu encoded %llu ratio %.4f encode_MB/s %.0f zstd_decode_MB/s %.0f\n", name,
              planes.size(), static_cast<unsigned long long>(in_bytes), static_cast<unsigned long long>(out_bytes),
              static_cast<double>(in_bytes) / static_cast<double>(out_bytes), static_cast<double>(in_bytes) / best / 1e6,
              static_cast<double>(in_bytes) / dsecs / 1e6);
}

int planes_bench(const std::string& dir) {
  const auto planes = exponent_planes(dir);
  ZSTD_CCtx* c = exponent_cctx();
  time_encoder("zstd-l1", planes, [&](const std::vector<uint8_t>& p, std::vector<uint8_t>& o) {
    return ZSTD_compress2(c, o.data(), o.size(), p.data(), p.size());
  });
  ZSTD_freeCCtx(c);
  c = sequences_cctx();
  std::vector<ZSTD_Sequence> seqs;
  time_encoder("zstd-seqs", planes, [&](const std::vector<uint8_t>& p, std::vector<uint8_t>& o) {
    // One block delimiter (offset 0, match length 0) per 128 KiB of literals: no matches at all.
    seqs.clear();
    for (size_t at = 0; at < p.size(); at += ZSTD_BLOCKSIZE_MAX) {
      ZSTD_Sequence s{};
      s.litLength = static_cast<unsigned>(std::min<size_t>(ZSTD_BLOCKSIZE_MAX, p.size() - at));
      seqs.push_back(s);
    }
    const size_t r = ZSTD_compressSequences(c, o.data(), o.size(), seqs.data(), seqs.size(), p.data(), p.size());
    if (ZSTD_isError(r)) throw std::runtime_error(std::string("ZSTD_compressSequences: ") + ZSTD_getErrorName(r));
    return r;
  });
  ZSTD_freeCCtx(c);
  LiteralsFrameEncoder enc;
  time_encoder("huf", planes, [&](const std::vector<uint8_t>& p, std::vector<uint8_t>& o) {
    return enc.encode(p.data(), p.size(), o.data());
  });
  // What pack does at level 1: repetitive planes to libzstd.
  c = exponent_cctx();
  size_t refused = 0;
  time_encoder("huf+zstd", planes, [&](const std::vector<uint8_t>& p, std::vector<uint8_t>& o) {
    if (const size_t r = enc.encode(p.data(), p.size(), o.data(), /*refuse_repeats=*/true)) return r;
    ++refused;
    return ZSTD_compress2(c, o.data(), o.size(), p.data(), p.size());
  });
  std::printf("huf+zstd: %zu of %zu plane encodes went to libzstd (repetitive)\n", refused, 3 * planes.size());
  ZSTD_freeCCtx(c);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: ckpt_bench_pack bound DIR | decode PACKED_DIR | planes DIR|synthetic\n");
    return 2;
  }
  try {
    if (std::strcmp(argv[1], "bound") == 0) return bound(argv[2]);
    if (std::strcmp(argv[1], "decode") == 0) return decode(argv[2]);
    if (std::strcmp(argv[1], "planes") == 0) return planes_bench(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt_bench_pack: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: ckpt_bench_pack bound DIR | decode PACKED_DIR | planes DIR|synthetic\n");
  return 2;
}
