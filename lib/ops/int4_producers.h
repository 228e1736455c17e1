// Streaming producers for INT4 RTN quantization (ops/int4_quant.h): one weight becomes the arrays
// its format stores (codes, scales, zeros, g_idx, weight_shape), each made by its own producer.
//
// One read of each weight: the producers of one weight share its Int4Quantization, which
// quantizes the weight strip by strip (whole rows, contiguous reads of about Int4CacheOptions::strip_bytes) into a
// cache of codes and group parameters [N, G]; every array is then a copy or a relayout of that
// cache. The codes are the format's own layout where the engine writes it (the CPU, GPTQ/AWQ:
// Int4Engine::writes_qweight), K-packed words [N, ceil(K/8)] otherwise:
//   compressed-tensors weight_packed [N, K/8]: the chunk's rows of the words;
//   GPTQ qweight [K/8, N] / AWQ qweight [K, N/8]: the chunk's bytes of the cache, or (K-packed
//     cache) a transpose / an N-pack of a stripe of K columns over every row; either way the
//     first such chunk needs every strip;
//   scales / zeros: the parameters of the chunk's groups and rows.
// A chunk computes the strips it needs that nobody has claimed yet and waits for those another
// thread is computing, so threads working on one weight share its strips. The words are freed
// once every codes byte has been produced; the parameters once scales and zeros are done (they
// come last in a file: safetensors sorts I32 before F16/BF16), or right after the codes when the
// plan's Int4KeepBudget cannot hold them until then.
//
// The strips are quantized by the weight's Int4Engine (the CPU, or the GPU behind --device cuda,
// which writes the same words and parameters).
//
// A weight whose cache would exceed Int4CacheOptions::max_cache_bytes is not cached: each chunk
// then quantizes just its own source rows / K-stripe (whole groups) from the source, and scales
// and zeros re-read the groups they need. The bytes are the same either way, and so is the error
// report for a given weight (the choice depends on the weight's shape alone, never on timing).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ops/int4_quant.h"
#include "plan/plan.h"
#include "plan/source_reader.h"

namespace ckpt {

// Bytes of group parameters that the weights of one plan may keep between the end of their codes
// and the end of their scales/zeros, shared by all of them (thread-safe).
class Int4KeepBudget {
 public:
  explicit Int4KeepBudget(uint64_t bytes) : left_(static_cast<int64_t>(bytes)) {}
  bool take(uint64_t n);
  void give(uint64_t n) { left_.fetch_add(static_cast<int64_t>(n)); }

 private:
  std::atomic<int64_t> left_;
};

// The cache arrays of the weights (thread-safe), in memory backed by transparent huge pages where
// the kernel offers them (MADV_HUGEPAGE): a fresh 4 KiB page costs a fault each, about 15 us on
// the 2-core PVM guest — 64 MB took 210-275 ms of CPU touched page by page and 4 ms in 2 MiB pages
// (BENCHMARKS "quantize --int4 ... branch int4cpu"). Arrays of 2 MiB and more get their own
// 2 MiB-aligned block and, once released, wait idle for the next weight of about the same size (at
// most `max_idle_bytes` wait; the rest is freed). Smaller arrays (the group parameters that a
// weight keeps until its scales are written, at the end of the file) are carved in order from
// shared 2 MiB slabs, each freed when its last array is: never kept idle, so a slab stays only
// while one of its arrays is live. Buffers are not zeroed (every cache element is written before
// it is read).
class Int4BufferPool : public std::enable_shared_from_this<Int4BufferPool> {
 public:
  static constexpr uint64_t kSlabBytes = 2ull << 20;
  explicit Int4BufferPool(uint64_t max_idle_bytes) : max_idle_(max_idle_bytes) {}
  // An array of n T (an implicit-lifetime type, alignment <= 64), returned to the pool or its slab
  // when the last owner lets go.
  template <class T>
  std::shared_ptr<T[]> get(uint64_t n) {
    static_assert(alignof(T) <= 64);
    std::shared_ptr<uint8_t[]> b = take(n * sizeof(T));
    return std::shared_ptr<T[]>(b, reinterpret_cast<T*>(b.get()));
  }

 private:
  using Block = std::shared_ptr<uint8_t>;  // owns a 2 MiB-aligned allocation
  std::shared_ptr<uint8_t[]> take(uint64_t bytes);
  void put(Block b, uint64_t bytes);

  std::mutex m_;
  std::multimap<uint64_t, Block> idle_;  // by size
  uint64_t idle_bytes_ = 0, max_idle_;
  Block slab_;  // the slab small arrays are carved from now
  uint64_t slab_used_ = 0;
};

// Where the INT4 math of a cached weight's strips runs: the CPU fast path (the default) or a GPU
// (kernels/int4_quant_engine.h, --device cuda). Every engine must give int4_quantize_reference's
// words and parameters; its error sums may differ in the last bits (a report, not output bytes).
class Int4Engine {
 public:
  virtual ~Int4Engine() = default;
  virtual std::string name() const = 0;
  // Source bytes per strip (Int4CacheOptions::strip_bytes for the weights it quantizes).
  virtual uint64_t strip_bytes() const = 0;
  // Free strips one thread claims at a time: the CPU takes one (the threads that need a weight
  // share its strips); a GPU engine takes several, to keep them in flight.
  virtual uint64_t strips_per_claim() const = 0;
  // Rows [row0, row0 + rows) of a weight, whole K (row0 a multiple of 8).
  struct Strip {
    uint64_t row0 = 0, rows = 0;
  };
  // Quantizes each strip of the source weight `src` (rows [row0, row0 + rows) are its elements
  // [row0 K, (row0 + rows) K)) into words[row * W + j] (W = ceil(K/8), K-packed as
  // int4_quantize_reference) and params[row * G + g], strip i's error into stats[i]. Returns the
  // first problem of the lowest strip that has one (the caller fails naming the tensor); the
  // arrays of that strip and those after it are then unspecified.
  virtual ops::Int4Issue quantize_strips(const ops::Int4Scheme& scheme, const ops::Int4Geometry& geo,
                                         const std::vector<Strip>& strips, const SourceElements& src, uint32_t* words,
                                         ops::Int4Params* params, ops::Fp8ErrorStats* stats) const = 0;
  // GPTQ / AWQ: whether quantize_strips_qweight is implemented, which writes the codes in the
  // format's own qweight layout instead of K-packed. The CPU does (ops::int4_quantize_qweight);
  // other engines' K-packed words are relaid out by the codes producer, chunk by chunk.
  virtual bool writes_qweight() const { return false; }
  // quantize_strips with `qweight` the whole weight's GPTQ [K/8, N] / AWQ [K, N/8] qweight array.
  virtual ops::Int4Issue quantize_strips_qweight(const ops::Int4Scheme& scheme, const ops::Int4Geometry& geo,
                                                 const std::vector<Strip>& strips, const SourceElements& src,
                                                 uint32_t* qweight, ops::Int4Params* params,
                                                 ops::Fp8ErrorStats* stats) const;
};

std::shared_ptr<const Int4Engine> cpu_int4_engine();

struct Int4CacheOptions {
  uint64_t max_cache_bytes = 256ull << 20;  // words + parameters of one weight; above: not cached
  std::shared_ptr<Int4KeepBudget> keep;     // null: parameters are dropped with the words
  std::shared_ptr<Int4BufferPool> pool;     // null: each weight allocates its cache afresh
  uint64_t strip_bytes = 2ull << 20;        // source bytes quantized at a time (whole rows, >= 8)
  // The cache's strips (null: the CPU). Weights that are not cached are quantized chunk by chunk
  // on the CPU whatever the engine: their chunks are K-stripes with partial error ranges, which the
  // CUDA kernel does not take; the bytes are the same.
  std::shared_ptr<const Int4Engine> engine;
};

// One weight [N, K] being quantized.
class Int4Quantization {
 public:
  Int4Quantization(std::string tensor, SourceView view, ops::Int4Scheme scheme, Int4CacheOptions cache = {});
  ~Int4Quantization();

  const std::string& tensor() const { return tensor_; }
  const ops::Int4Scheme& scheme() const { return scheme_; }
  const ops::Int4Geometry& geometry() const { return geo_; }
  const SourceView& view() const { return view_; }
  // The error of everything the codes producer has written, summed per strip (cached weights) or
  // per chunk (others) in order: the same for any thread count. Each element is counted once.
  ops::Fp8ErrorStats stats() const;
  // Whether this weight goes through the cache (its words and parameters fit max_cache_bytes).
  bool cached() const { return cache_bytes_ <= cache_options_.max_cache_bytes; }
  // Whether the cache's words are GPTQ's / AWQ's qweight itself (the engine writes that layout).
  bool qweight_cache() const { return qweight_cache_; }

  // The cache, for the producers: rows [r0, r1) of the words (when `words`) and parameters,
  // computed (or waited for) now. Null members: the cache is not available for this (not cached,
  // or already freed) and the caller reads the source itself.
  struct Rows {
    std::shared_ptr<const uint32_t[]> words;           // [N, ceil(K/8)], or qweight where qweight_cache()
    std::shared_ptr<const ops::Int4Params[]> params;  // [N, G]
  };
  Rows rows(const SourceReader& src, uint64_t r0, uint64_t r1, bool words) const;
  // Bytes of an array produced, so the cache can be freed when nothing needs it any more.
  enum class Array : uint8_t { kCodes, kScales, kZeros };
  void produced(Array a, uint64_t bytes) const;

  // Runs ops::int4_quantize_fast over source rows [r0, r1) and columns [c0, c1) (group
  // boundaries), reading about strip_bytes of source at a time: for each strip of rows (a
  // multiple of 8 rows), `each(row0, rows, params, words)` sees the strip's parameters
  // ([rows, (c1 - c0) / group]) and, when kb < ke, its K-packed words of columns [kb, ke)
  // ([rows, ceil((ke - kb) / 8)]). Errors of columns [ks, ke) are added to stats slot `slot`
  // (ks == ke: none). A NaN/Inf element fails naming the file and the tensor.
  using StripFn = std::function<void(uint64_t row0, uint64_t rows, const ops::Int4Params* params, const uint32_t* words)>;
  void run(const SourceReader& src, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1, uint64_t kb, uint64_t ke,
           uint64_t ks, uint64_t slot, const StripFn& each) const;

 private:
  struct Cache;
  void add_stats(uint64_t slot, const ops::Fp8ErrorStats& s) const;
  void compute_strips(const SourceReader& src, const std::vector<uint64_t>& strips, uint32_t* words,
                      ops::Int4Params* params, ops::Fp8ErrorStats* stats) const;
  void release_if_done() const;  // with the cache's mutex held

  std::string tensor_;
  SourceView view_;
  ops::Int4Scheme scheme_;
  ops::Int4Geometry geo_;
  Int4CacheOptions cache_options_;
  uint64_t cache_bytes_ = 0, strip_rows_ = 0;
  bool qweight_cache_ = false;
  std::unique_ptr<Cache> cache_;
  mutable std::mutex stats_mutex_;
  mutable std::map<uint64_t, ops::Fp8ErrorStats> stats_;
};

// The format's arrays of `q` (shapes: ops::int4_shapes).
std::shared_ptr<Producer> int4_codes_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_scales_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_zeros_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_g_idx_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_weight_shape_producer(std::shared_ptr<const Int4Quantization> q);

}  // namespace ckpt
