// The streaming INT4 producers (ops/int4_producers.h) against the scalar reference run over the
// whole weight: every array of every format, symmetric and asymmetric, groups 32/128/-1, made
// whole and in odd chunks (the executor may ask for any whole-element range), give the bytes of
// ops::int4_quantize_reference packed by the format's layout; the error statistics count every
// element exactly once whatever the chunking; a NaN is an error naming the tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "ops/int4_producers.h"
#include "test_support.h"

namespace ckpt {
namespace {

constexpr uint64_t kN = 48, kK = 256;

// A BF16 weight with varied magnitudes, an all-zero group (row 3, first 32 columns), exact ties
// and an all-positive row (row 5).
std::vector<uint16_t> weight_bits(bool nan) {
  std::vector<uint16_t> w(kN * kK);
  uint32_t x = 12345;
  for (uint64_t i = 0; i < w.size(); ++i) {
    x = x * 1664525u + 1013904223u;
    float v = (static_cast<float>(x >> 8) / 16777216.0f - 0.5f) * (1.0f + static_cast<float>(i % 97) / 7.0f);
    const uint64_t r = i / kK, c = i % kK;
    if (r == 3 && c < 32) v = 0.0f;
    if (r == 5) v = std::fabs(v);
    if (r == 7) v = static_cast<float>(static_cast<int>(c % 16) - 8) * 0.25f;  // ties at x / S = k + 0.5
    uint32_t b;
    std::memcpy(&b, &v, 4);
    w[i] = static_cast<uint16_t>(b >> 16);
  }
  if (nan) w[17 * kK + 200] = 0x7FC0;
  return w;
}

std::string write_weight(const test::ScratchDir& d, bool nan) {
  std::vector<uint16_t> w = weight_bits(nan);
  std::vector<uint8_t> bytes(w.size() * 2);
  std::memcpy(bytes.data(), w.data(), bytes.size());
  const std::string header = "{\"w.weight\":{\"dtype\":\"BF16\",\"shape\":[" + std::to_string(kN) + "," +
                             std::to_string(kK) + "],\"data_offsets\":[0," + std::to_string(bytes.size()) + "]}}";
  const std::string path = d / "model.safetensors";
  test::write_raw_safetensors(path, header, bytes);
  return path;
}

struct Arrays {
  std::vector<uint8_t> codes, scales, zeros, g_idx, shape;
};

// The reference: one int4_quantize_reference call over the whole weight, packed by the layouts.
Arrays reference(const ops::Int4Scheme& s, const std::vector<uint16_t>& w, ops::Fp8ErrorStats* stats) {
  const ops::Int4Geometry geo = ops::int4_geometry(s, kN, kK);
  const uint64_t W = kK / 8;
  std::vector<ops::Int4Params> params(kN * geo.groups);
  std::vector<uint32_t> words(kN * W);
  const ops::Int4Source src{reinterpret_cast<const uint8_t*>(w.data()), DType::BF16, kK, 0, kN, 0, kK};
  EXPECT_FALSE(ops::int4_quantize_reference(s, geo, src, 0, kK, params.data(), words.data(), W, stats));
  const ops::Int4Shapes sh = ops::int4_shapes(s, kN, kK);
  Arrays a;
  std::vector<uint32_t> codes(sh.weights[0] * sh.weights[1]);
  if (s.format == ops::Int4Format::kCompressedTensors) codes = words;
  else if (s.format == ops::Int4Format::kGptq) ops::int4_words_to_gptq(words.data(), W, kN, W, codes.data(), kN);
  else ops::int4_words_to_awq(words.data(), W, kN, W, codes.data(), kN / 8);
  a.codes.resize(codes.size() * 4);
  std::memcpy(a.codes.data(), codes.data(), a.codes.size());
  const ops::Int4ParamsView all{params.data(), geo.groups, 0, kN, 0, geo.groups};
  a.scales.resize(sh.scales[0] * sh.scales[1] * (dtype_bits(s.scale_dtype) / 8));
  ops::int4_store_scales(s, geo, all, a.scales.data());
  if (!sh.zeros.empty()) {
    std::vector<uint32_t> z(sh.zeros[0] * sh.zeros[1]);
    ops::int4_store_zeros(s, geo, all, z.data());
    a.zeros.resize(z.size() * 4);
    std::memcpy(a.zeros.data(), z.data(), a.zeros.size());
  }
  return a;
}

// The CPU's math with K-packed words only (as a GPU engine writes them): the codes producer then
// lays GPTQ/AWQ out chunk by chunk, where the CPU engine writes qweight itself.
class KPackedCpuEngine : public Int4Engine {
 public:
  std::string name() const override { return "cpu, K-packed"; }
  uint64_t strip_bytes() const override { return cpu_int4_engine()->strip_bytes(); }
  uint64_t strips_per_claim() const override { return 2; }
  ops::Int4Issue quantize_strips(const ops::Int4Scheme& scheme, const ops::Int4Geometry& geo,
                                 const std::vector<Strip>& strips, const SourceElements& src, uint32_t* words,
                                 ops::Int4Params* params, ops::Fp8ErrorStats* stats) const override {
    return cpu_int4_engine()->quantize_strips(scheme, geo, strips, src, words, params, stats);
  }
};

// The producer's bytes, asked for in chunks of `chunk` elements of `elem` bytes.
std::vector<uint8_t> produce(const Producer& p, const SourceReader& src, uint64_t elem, uint64_t chunk) {
  std::vector<uint8_t> out(p.nbytes());
  for (uint64_t b = 0; b < out.size(); b += chunk * elem) {
    const uint64_t n = std::min(chunk * elem, out.size() - b);
    p.produce(src, b, n, out.data() + b);
  }
  return out;
}

TEST(Int4Producers, EveryArrayInAnyChunkingIsTheReference) {
  test::ScratchDir d;
  const std::string path = write_weight(d, false);
  const std::vector<uint16_t> w = weight_bits(false);
  Checkpoint ck = open_checkpoint(path);
  const TensorRef& t = ck.tensors.at(0);
  SourceReader src({path});
  for (auto format : {ops::Int4Format::kGptq, ops::Int4Format::kAwq, ops::Int4Format::kCompressedTensors})
    for (bool sym : {true, false})
      for (int64_t group : {int64_t{32}, int64_t{128}, int64_t{-1}}) {
        if (format == ops::Int4Format::kAwq && sym) continue;  // AWQ always has zero points
        ops::Int4Scheme s;
        s.format = format;
        s.symmetric = sym;
        s.group_size = group;
        s.scale_dtype = format == ops::Int4Format::kCompressedTensors ? DType::BF16 : DType::F16;
        s.gptq_zero_offset = sym ? 1 : 0;
        const std::string what = std::string(ops::int4_format_name(format)) + (sym ? " sym g" : " asym g") +
                                 std::to_string(group);
        ops::Fp8ErrorStats ref_stats;
        const Arrays ref = reference(s, w, &ref_stats);
        for (uint64_t chunk : {uint64_t{1} << 30, uint64_t{7}, uint64_t{53}, uint64_t{200}})
        for (uint64_t cache : {uint64_t{256} << 20, uint64_t{0}})  // the shared cache, and none
        for (int engine = 0; engine < 3; ++engine) {  // the CPU's (2 MiB, 24-row strips), K-packed words
          if (engine > 0 && !cache) continue;
          SCOPED_TRACE(cache ? "cached, engine " + std::to_string(engine) : "not cached");
          Int4CacheOptions options;
          options.max_cache_bytes = cache;
          if (engine == 1) options.strip_bytes = 24 * kK * 2;  // 24 rows: GPTQ strips of 16, AWQ pieces cut
          if (engine == 2) options.engine = std::make_shared<KPackedCpuEngine>();
          auto q = std::make_shared<Int4Quantization>(t.name, t.view, s, options);
          EXPECT_EQ(q->cached(), cache != 0);
          EXPECT_EQ(q->qweight_cache(), engine < 2 && format != ops::Int4Format::kCompressedTensors);
          EXPECT_EQ(produce(*int4_codes_producer(q), src, 4, chunk), ref.codes) << what << " chunk " << chunk;
          const uint64_t ss = dtype_bits(s.scale_dtype) / 8;
          EXPECT_EQ(produce(*int4_scales_producer(q), src, ss, chunk), ref.scales) << what << " chunk " << chunk;
          if (!ref.zeros.empty()) {
            EXPECT_EQ(produce(*int4_zeros_producer(q), src, 4, chunk), ref.zeros) << what << " chunk " << chunk;
          }
          // Every element counted once: the reference's sums, up to the fast path's float32 summation order.
          const ops::Fp8ErrorStats st = q->stats();
          EXPECT_NEAR(st.sum_sq, ref_stats.sum_sq, 1e-6 * ref_stats.sum_sq) << what << " chunk " << chunk;
          EXPECT_NEAR(st.sum_sq_err, ref_stats.sum_sq_err, 1e-6 * ref_stats.sum_sq_err) << what << " chunk " << chunk;
          EXPECT_NEAR(st.max_abs_err, ref_stats.max_abs_err, 1e-6 * ref_stats.max_abs_err) << what;  // fast path: last bits
          EXPECT_GT(st.sum_sq_err, 0.0) << what;
        }
        if (format == ops::Int4Format::kGptq) {
          auto q = std::make_shared<Int4Quantization>(t.name, t.view, s);
          std::vector<uint8_t> g = produce(*int4_g_idx_producer(q), src, 4, 5);
          const uint64_t gs = group > 0 ? static_cast<uint64_t>(group) : kK;
          for (uint64_t k = 0; k < kK; ++k) {
            int32_t v;
            std::memcpy(&v, g.data() + 4 * k, 4);
            ASSERT_EQ(v, static_cast<int32_t>(k / gs)) << k;
          }
        }
        if (format == ops::Int4Format::kCompressedTensors) {
          auto q = std::make_shared<Int4Quantization>(t.name, t.view, s);
          std::vector<uint8_t> sh = produce(*int4_weight_shape_producer(q), src, 8, 1);
          int64_t v[2];
          std::memcpy(v, sh.data(), 16);
          EXPECT_EQ(v[0], static_cast<int64_t>(kN));
          EXPECT_EQ(v[1], static_cast<int64_t>(kK));
        }
      }
}

// Threads asking for chunks of codes, scales and zeros in a shuffled order (scales before the codes
// of their rows, codes of one weight on several threads at once) share the strips of the cache and
// get the reference bytes; the error report is the same at every thread count. With no keep
// budget, scales/zeros asked after the codes re-read the source; with too small a cache, nothing is
// cached.
TEST(Int4Producers, ThreadsSharingTheCacheGiveTheReference) {
  test::ScratchDir d;
  const std::string path = write_weight(d, false);
  const std::vector<uint16_t> w = weight_bits(false);
  Checkpoint ck = open_checkpoint(path);
  const TensorRef& t = ck.tensors.at(0);
  SourceReader src({path});
  for (auto format : {ops::Int4Format::kGptq, ops::Int4Format::kAwq, ops::Int4Format::kCompressedTensors}) {
    ops::Int4Scheme s;
    s.format = format;
    s.symmetric = false;
    s.group_size = 32;
    s.scale_dtype = format == ops::Int4Format::kCompressedTensors ? DType::BF16 : DType::F16;
    s.gptq_zero_offset = 0;
    const Arrays ref = reference(s, w, nullptr);
    std::optional<ops::Fp8ErrorStats> first;
    // One pool across the runs: later weights get the earlier ones' dirty arrays back.
    const auto buffers = std::make_shared<Int4BufferPool>(uint64_t{64} << 20);
    for (int threads : {1, 2, 4})
      for (uint64_t keep : {uint64_t{0}, uint64_t{1} << 20})
        for (uint64_t cache : {uint64_t{256} << 20, uint64_t{1000}}) {
          const std::string what = std::string(ops::int4_format_name(format)) + " threads " + std::to_string(threads) +
                                   " keep " + std::to_string(keep) + " cache " + std::to_string(cache);
          Int4CacheOptions o;
          o.max_cache_bytes = cache;
          o.keep = std::make_shared<Int4KeepBudget>(keep);
          o.pool = threads == 1 ? nullptr : buffers;
          o.strip_bytes = 8 * kK * 2;  // 6 strips of 8 rows
          auto q = std::make_shared<Int4Quantization>(t.name, t.view, s, o);
          const std::shared_ptr<Producer> ps[3] = {int4_codes_producer(q), int4_scales_producer(q),
                                                   int4_zeros_producer(q)};
          const uint64_t elem[3] = {4, dtype_bits(s.scale_dtype) / 8, 4};
          std::vector<uint8_t> out[3];
          struct Job { int array; uint64_t begin, n; };
          std::vector<Job> jobs;
          for (int a = 0; a < 3; ++a) {
            out[a].resize(ps[a]->nbytes());
            const uint64_t step = 13 * elem[a];
            for (uint64_t b = 0; b < out[a].size(); b += step) jobs.push_back({a, b, std::min(step, out[a].size() - b)});
          }
          std::shuffle(jobs.begin(), jobs.end(), std::mt19937(threads * 7 + static_cast<int>(keep)));
          std::atomic<size_t> next{0};
          auto work = [&] {
            for (size_t i; (i = next.fetch_add(1)) < jobs.size();)
              ps[jobs[i].array]->produce(src, jobs[i].begin, jobs[i].n, out[jobs[i].array].data() + jobs[i].begin);
          };
          std::vector<std::thread> pool;
          for (int i = 0; i < threads; ++i) pool.emplace_back(work);
          for (auto& th : pool) th.join();
          EXPECT_EQ(out[0], ref.codes) << what;
          EXPECT_EQ(out[1], ref.scales) << what;
          EXPECT_EQ(out[2], ref.zeros) << what;
          if (cache > 1000) {
            const ops::Fp8ErrorStats st = q->stats();
            if (!first) first = st;
            EXPECT_EQ(st.sum_sq_err, first->sum_sq_err) << what;
            EXPECT_EQ(st.max_abs_err, first->max_abs_err) << what;
          }
        }
  }
}

TEST(Int4Producers, BufferPoolReusesUpToItsBound) {
  constexpr uint64_t MiB = 1ull << 20;
  const auto pool = std::make_shared<Int4BufferPool>(9 * MiB);
  const uint8_t* two = pool->get<uint8_t>(2 * MiB).get();  // idle once released
  EXPECT_EQ(reinterpret_cast<uintptr_t>(two) % Int4BufferPool::kSlabBytes, 0u);
  {
    auto again = pool->get<uint32_t>(MiB / 2);  // 2 MiB
    EXPECT_EQ(reinterpret_cast<const uint8_t*>(again.get()), two);  // the idle block came back
  }
  EXPECT_NE(pool->get<uint8_t>(6 * MiB).get(), two);  // more than twice the idle 2 MiB
  const uint8_t* mid = nullptr;
  {
    auto m = pool->get<uint8_t>(8 * MiB);
    mid = m.get();
  }  // idle 2 + 6 + 8 MiB > 9 MiB: the smaller idle blocks are dropped for it
  EXPECT_EQ(pool->get<uint8_t>(4 * MiB).get(), mid);  // at most twice the size asked for
}

TEST(Int4Producers, BufferPoolCarvesSmallArraysFromSlabs) {
  const auto pool = std::make_shared<Int4BufferPool>(0);
  auto a = pool->get<uint32_t>(100);  // 400 bytes: the start of a fresh 2 MiB slab
  auto b = pool->get<uint32_t>(100);  // the next cache line after it
  const auto at = [](const void* p) { return reinterpret_cast<uintptr_t>(p); };
  EXPECT_EQ(at(a.get()) % Int4BufferPool::kSlabBytes, 0u);
  EXPECT_EQ(at(b.get()), at(a.get()) + 448);
  auto c = pool->get<uint8_t>(Int4BufferPool::kSlabBytes - 100);  // does not fit the rest: a new slab
  EXPECT_EQ(at(c.get()) % Int4BufferPool::kSlabBytes, 0u);
  EXPECT_NE(at(c.get()), at(a.get()));
  a.reset();  // b still holds the first slab: writing it stays valid (ASan would say otherwise)
  std::memset(b.get(), 1, 400);
  EXPECT_EQ(b[99], 0x01010101u);
}

TEST(Int4Producers, NaNIsAnErrorNamingTheTensor) {
  test::ScratchDir d;
  const std::string path = write_weight(d, true);
  Checkpoint ck = open_checkpoint(path);
  SourceReader src({path});
  ops::Int4Scheme s;
  auto q = std::make_shared<Int4Quantization>("w.weight", ck.tensors.at(0).view, s);
  try {
    produce(*int4_codes_producer(q), src, 4, 1 << 20);
    ADD_FAILURE() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.tensor(), "w.weight");
    EXPECT_EQ(e.file(), path);
  }
}

}  // namespace
}  // namespace ckpt
