#include "ops/int4_producers.h"

#include <sys/mman.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace ckpt {

namespace {

uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

ojson describe(const Int4Quantization& q, const char* what) {
  ojson d = ojson::object();
  d["op"] = what;
  d["tensor"] = q.tensor();
  d["format"] = ops::int4_format_name(q.scheme().format);
  d["group_size"] = q.scheme().group_size;
  d["symmetric"] = q.scheme().symmetric;
  d["scale_dtype"] = std::string(dtype_name(q.scheme().scale_dtype));
  d["source"] = {{"file", q.view().file}, {"offset", q.view().offset}, {"dtype", std::string(dtype_name(q.view().dtype))}};
  return d;
}

// A producer whose output is an array of `elem`-byte elements made `range` at a time.
class Int4Producer : public Producer {
 public:
  using Fn = std::function<void(const Int4Quantization&, const SourceReader&, uint64_t e0, uint64_t e1, uint8_t* out)>;
  Int4Producer(std::shared_ptr<const Int4Quantization> q, uint64_t elements, uint64_t elem, const char* what, Fn fn,
               std::optional<Int4Quantization::Array> array = std::nullopt)
      : q_(std::move(q)), elements_(elements), elem_(elem), what_(what), fn_(std::move(fn)), array_(array) {}
  uint64_t nbytes() const override { return elements_ * elem_; }
  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override {
    fn_(*q_, src, begin / elem_, (begin + n) / elem_, out);
    if (array_) q_->produced(*array_, n);
  }
  ojson describe() const override { return ckpt::describe(*q_, what_); }

 private:
  std::shared_ptr<const Int4Quantization> q_;
  uint64_t elements_, elem_;
  const char* what_;
  Fn fn_;
  std::optional<Int4Quantization::Array> array_;
};

// Group-aligned column range covering columns [a, b).
std::pair<uint64_t, uint64_t> widen(const ops::Int4Geometry& geo, uint64_t a, uint64_t b) {
  return {a / geo.group * geo.group, std::min(geo.k, cdiv(b, geo.group) * geo.group)};
}

// compressed-tensors weight_packed [N, W]: words [w0, w1). A row counts its error in the chunk
// holding its first word.
void ct_codes(const Int4Quantization& q, const SourceReader& src, uint64_t w0, uint64_t w1, uint8_t* out) {
  const ops::Int4Geometry& geo = q.geometry();
  const uint64_t W = cdiv(geo.k, 8);
  const uint64_t r0 = w0 / W, r1 = cdiv(w1, W);
  if (const auto c = q.rows(src, r0, r1, true); c.words) {
    std::memcpy(out, c.words.get() + w0, (w1 - w0) * 4);
    return;
  }
  const uint64_t counted = cdiv(w0, W);  // first row whose first word is in the chunk
  auto copy = [&](uint64_t row0, uint64_t rows, const ops::Int4Params*, const uint32_t* words) {
    for (uint64_t r = 0; r < rows; ++r) {
      const uint64_t a = std::max(w0, (row0 + r) * W), b = std::min(w1, (row0 + r + 1) * W);
      if (a < b) std::memcpy(out + (a - w0) * 4, words + r * W + (a - (row0 + r) * W), (b - a) * 4);
    }
  };
  if (counted > r0) q.run(src, r0, counted, 0, geo.k, 0, geo.k, geo.k, w0, copy);
  if (r1 > counted) q.run(src, counted, r1, 0, geo.k, 0, geo.k, 0, w0, copy);
}

// GPTQ qweight [K/8, N] (words (j, n)) and AWQ qweight [K, N/8] (words (k, m)): a stripe of K
// columns over every row. An 8-column unit counts its error in the chunk holding its first word.
void kpacked_codes(const Int4Quantization& q, const SourceReader& src, uint64_t w0, uint64_t w1, uint8_t* out) {
  const ops::Int4Geometry& geo = q.geometry();
  const bool gptq = q.scheme().format == ops::Int4Format::kGptq;
  const uint64_t row_words = gptq ? geo.n : geo.n / 8;  // words per output row
  const uint64_t cols_per_row = gptq ? 8 : 1;            // K columns per output row
  const uint64_t o0 = w0 / row_words, o1 = cdiv(w1, row_words);  // output rows
  if (const auto c = q.rows(src, 0, geo.n, true); c.words) {
    if (q.qweight_cache()) {  // the engine wrote qweight itself
      std::memcpy(out, c.words.get() + w0, (w1 - w0) * 4);
      return;
    }
    const uint64_t W = cdiv(geo.k, 8);
    const uint64_t j0 = gptq ? o0 : o0 / 8, j1 = gptq ? o1 : cdiv(o1, 8);  // words of each row
    const uint64_t first = (gptq ? j0 : 8 * j0) * row_words;       // output word of the stripe's start
    const uint64_t span = (j1 - j0) * (gptq ? geo.n : 8 * row_words);  // output words of the stripe
    // Whole output rows: straight into `out`; otherwise through a buffer kept by the thread (a
    // fresh one per chunk paid its zero fill and page faults: a fifth of the command's faults).
    thread_local std::vector<uint32_t> tmp;
    const bool whole = w0 == first && w1 == first + span;
    if (!whole && tmp.size() < span) tmp.resize(span);
    uint32_t* dst = whole ? reinterpret_cast<uint32_t*>(out) : tmp.data();
    if (gptq) ops::int4_words_to_gptq(c.words.get() + j0, W, geo.n, j1 - j0, dst, geo.n);
    else ops::int4_words_to_awq(c.words.get() + j0, W, geo.n, j1 - j0, dst, row_words);
    if (!whole) std::memcpy(out, tmp.data() + (w0 - first), (w1 - w0) * 4);
    return;
  }
  const uint64_t kb = o0 * cols_per_row / 8 * 8, ke = std::min(geo.k, cdiv(o1 * cols_per_row, 8) * 8);
  // First 8-column unit whose first word lies in the chunk.
  const uint64_t unit_words = 8 / cols_per_row * row_words;
  const uint64_t ks = std::min(ke, std::max(kb, cdiv(w0, unit_words) * 8));
  const auto [c0, c1] = widen(geo, kb, ke);
  const uint64_t nwords = cdiv(ke - kb, 8);
  const uint64_t first_row = gptq ? kb / 8 : kb;          // output row of column kb
  const uint64_t block_rows = gptq ? nwords : nwords * 8;  // output rows the stripe fills
  std::vector<uint32_t> block(block_rows * row_words);
  auto place = [&](uint64_t row0, uint64_t rows, const ops::Int4Params*, const uint32_t* words) {
    if (gptq) ops::int4_words_to_gptq(words, nwords, rows, nwords, block.data() + row0, geo.n);
    else ops::int4_words_to_awq(words, nwords, rows, nwords, block.data() + row0 / 8, geo.n / 8);
  };
  if (ks > kb) q.run(src, 0, geo.n, c0, c1, kb, ke, ke, w0, place);  // codes only (head unit)
  if (ke > ks) q.run(src, 0, geo.n, c0, c1, kb, ke, ks, w0, place);
  const uint64_t first = first_row * row_words;
  std::memcpy(out, reinterpret_cast<const uint8_t*>(block.data()) + (w0 - first) * 4, (w1 - w0) * 4);
}

// The parameters of rows [r0, r1) and groups [g0, g1), handed to `store` strip by strip with a
// view whose g0 is relative (0).
template <class Store>
void params_of(const Int4Quantization& q, const SourceReader& src, uint64_t r0, uint64_t r1, uint64_t g0, uint64_t g1,
               Store store) {
  const ops::Int4Geometry& geo = q.geometry();
  if (const auto c = q.rows(src, r0, r1, false); c.params) {
    store(ops::Int4ParamsView{c.params.get() + r0 * geo.groups + g0, geo.groups, r0, r1 - r0, 0, g1 - g0});
    return;
  }
  const uint64_t c0 = g0 * geo.group;  // kb == ke == c0: parameters only
  q.run(src, r0, r1, c0, g1 * geo.group, c0, c0, c0, 0,
        [&](uint64_t row0, uint64_t rows, const ops::Int4Params* p, const uint32_t*) {
          store(ops::Int4ParamsView{p, g1 - g0, row0, rows, 0, g1 - g0});
        });
}

void scales_chunk(const Int4Quantization& q, const SourceReader& src, uint64_t e0, uint64_t e1, uint8_t* out) {
  const ops::Int4Geometry& geo = q.geometry();
  const ops::Int4Scheme& s = q.scheme();
  const uint64_t size = dtype_bits(s.scale_dtype) / 8;
  std::vector<uint8_t> tmp;
  if (s.format == ops::Int4Format::kCompressedTensors) {  // [N, G]: rows of W
    const uint64_t r0 = e0 / geo.groups, r1 = cdiv(e1, geo.groups);
    tmp.resize((r1 - r0) * geo.groups * size);
    ops::Int4Geometry local = geo;
    local.n = r1 - r0;
    params_of(q, src, r0, r1, 0, geo.groups, [&](ops::Int4ParamsView v) {
      v.row0 -= r0;
      ops::int4_store_scales(s, local, v, tmp.data());
    });
    std::memcpy(out, tmp.data() + (e0 - r0 * geo.groups) * size, (e1 - e0) * size);
    return;
  }
  const uint64_t g0 = e0 / geo.n, g1 = cdiv(e1, geo.n);  // [G, N]: groups
  tmp.resize((g1 - g0) * geo.n * size);
  params_of(q, src, 0, geo.n, g0, g1, [&](const ops::Int4ParamsView& v) { ops::int4_store_scales(s, geo, v, tmp.data()); });
  std::memcpy(out, tmp.data() + (e0 - g0 * geo.n) * size, (e1 - e0) * size);
}

void zeros_chunk(const Int4Quantization& q, const SourceReader& src, uint64_t e0, uint64_t e1, uint8_t* out) {
  const ops::Int4Geometry& geo = q.geometry();
  const ops::Int4Scheme& s = q.scheme();
  std::vector<uint32_t> tmp;
  if (s.format == ops::Int4Format::kCompressedTensors) {  // [ceil(N/8), G]
    const uint64_t m0 = e0 / geo.groups, m1 = cdiv(e1, geo.groups);
    const uint64_t r0 = m0 * 8, r1 = std::min(geo.n, m1 * 8);
    tmp.resize((m1 - m0) * geo.groups);
    ops::Int4Geometry local = geo;
    local.n = r1 - r0;
    params_of(q, src, r0, r1, 0, geo.groups, [&](ops::Int4ParamsView v) {
      v.row0 -= r0;
      ops::int4_store_zeros(s, local, v, tmp.data());
    });
    std::memcpy(out, tmp.data() + (e0 - m0 * geo.groups), (e1 - e0) * 4);
    return;
  }
  const uint64_t per = geo.n / 8;  // [G, N/8]
  const uint64_t g0 = e0 / per, g1 = cdiv(e1, per);
  tmp.resize((g1 - g0) * per);
  params_of(q, src, 0, geo.n, g0, g1, [&](const ops::Int4ParamsView& v) { ops::int4_store_zeros(s, geo, v, tmp.data()); });
  std::memcpy(out, tmp.data() + (e0 - g0 * per), (e1 - e0) * 4);
}

}  // namespace

bool Int4KeepBudget::take(uint64_t n) {
  const int64_t want = static_cast<int64_t>(n);
  int64_t left = left_.load();
  while (left >= want)
    if (left_.compare_exchange_weak(left, left - want)) return true;
  return false;
}

namespace {

// `bytes` rounded up to whole 2 MiB pages, 2 MiB-aligned, asked to be backed by huge pages (a hint:
// without THP it is ordinary memory).
std::shared_ptr<uint8_t> huge_block(uint64_t bytes) {
  const uint64_t size = cdiv(bytes, Int4BufferPool::kSlabBytes) * Int4BufferPool::kSlabBytes;
  void* p = std::aligned_alloc(Int4BufferPool::kSlabBytes, size);
  if (!p) throw std::bad_alloc();
  ::madvise(p, size, MADV_HUGEPAGE);
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

}  // namespace

std::shared_ptr<uint8_t[]> Int4BufferPool::take(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(m_);
  if (bytes < kSlabBytes) {
    uint64_t off = cdiv(slab_used_, 64) * 64;  // cache-line aligned
    if (!slab_ || off + bytes > kSlabBytes) {
      slab_ = huge_block(kSlabBytes);
      off = 0;
    }
    slab_used_ = off + bytes;
    // The array shares the slab's ownership: the slab is freed with its last array.
    return std::shared_ptr<uint8_t[]>(slab_, slab_.get() + off);
  }
  Block b;
  // The smallest idle block that fits, unless it is more than twice too large.
  if (auto it = idle_.lower_bound(bytes); it != idle_.end() && it->first <= 2 * bytes) {
    bytes = it->first;
    b = std::move(it->second);
    idle_bytes_ -= bytes;
    idle_.erase(it);
  } else {
    b = huge_block(bytes);
  }
  uint8_t* p = b.get();
  return std::shared_ptr<uint8_t[]>(p, [self = shared_from_this(), b = std::move(b), bytes](uint8_t*) { self->put(b, bytes); });
}

void Int4BufferPool::put(Block b, uint64_t bytes) {
  if (bytes > max_idle_) return;
  std::lock_guard<std::mutex> lock(m_);
  // Full: drop smaller idle blocks first (weights of one model repeat their shapes).
  while (idle_bytes_ + bytes > max_idle_ && !idle_.empty() && idle_.begin()->first < bytes) {
    idle_bytes_ -= idle_.begin()->first;
    idle_.erase(idle_.begin());
  }
  if (idle_bytes_ + bytes > max_idle_) return;
  idle_bytes_ += bytes;
  idle_.emplace(bytes, std::move(b));
}

ops::Int4Issue Int4Engine::quantize_strips_qweight(const ops::Int4Scheme&, const ops::Int4Geometry&,
                                                   const std::vector<Strip>&, const SourceElements&, uint32_t*,
                                                   ops::Int4Params*, ops::Fp8ErrorStats*) const {
  throw std::logic_error("Int4Engine " + name() + " does not write qweight");
}

namespace {

class CpuInt4Engine : public Int4Engine {
 public:
  std::string name() const override { return "cpu"; }
  uint64_t strip_bytes() const override { return Int4CacheOptions{}.strip_bytes; }
  uint64_t strips_per_claim() const override { return 1; }
  ops::Int4Issue quantize_strips(const ops::Int4Scheme& scheme, const ops::Int4Geometry& geo,
                                 const std::vector<Strip>& strips, const SourceElements& src, uint32_t* words,
                                 ops::Int4Params* params, ops::Fp8ErrorStats* stats) const override {
    const uint64_t W = cdiv(geo.k, 8);
    return each_strip(geo, strips, src, [&](const ops::Int4Source& block, ops::Fp8ErrorStats* st) {
      return ops::int4_quantize_fast(scheme, geo, block, 0, geo.k, params + block.row0 * geo.groups,
                                     words + block.row0 * W, W, st);
    }, stats);
  }
  bool writes_qweight() const override { return true; }
  ops::Int4Issue quantize_strips_qweight(const ops::Int4Scheme& scheme, const ops::Int4Geometry& geo,
                                         const std::vector<Strip>& strips, const SourceElements& src,
                                         uint32_t* qweight, ops::Int4Params* params,
                                         ops::Fp8ErrorStats* stats) const override {
    return each_strip(geo, strips, src, [&](const ops::Int4Source& block, ops::Fp8ErrorStats* st) {
      return ops::int4_quantize_qweight(scheme, geo, block, params + block.row0 * geo.groups, qweight, st);
    }, stats);
  }

 private:
  // fn(block, &stats[i]) for each strip i, the block straight from the page cache where the source
  // allows it (SourceElements::with): a copy of the source bytes was three quarters of the
  // command's CPU (perf, 2026-12-07). The first issue ends the loop.
  template <class Fn>
  static ops::Int4Issue each_strip(const ops::Int4Geometry& geo, const std::vector<Strip>& strips,
                                   const SourceElements& src, Fn fn, ops::Fp8ErrorStats* stats) {
    for (size_t i = 0; i < strips.size(); ++i) {
      const uint64_t a = strips[i].row0, rows = strips[i].rows;  // not a structured binding: the lambda captures them
      ops::Int4Issue issue;
      src.with(a * geo.k, rows * geo.k, [&](const uint8_t* in) {
        issue = fn(ops::Int4Source{in, src.view().dtype, geo.k, a, rows, 0, geo.k}, &stats[i]);
      });
      if (issue) return issue;
    }
    return {};
  }
};

}  // namespace

std::shared_ptr<const Int4Engine> cpu_int4_engine() {
  static const auto engine = std::make_shared<CpuInt4Engine>();
  return engine;
}

struct Int4Quantization::Cache {
  enum class State : uint8_t { kFresh, kLive, kParamsOnly, kGone };
  enum Strip : uint8_t { kFree, kComputing, kDone, kFailed };
  std::mutex m;
  std::condition_variable cv;
  State state = State::kFresh;
  std::shared_ptr<uint32_t[]> words;
  std::shared_ptr<ops::Int4Params[]> params;
  std::vector<uint8_t> strips;
  std::vector<ops::Fp8ErrorStats> strip_stats;
  std::exception_ptr error;
  uint64_t left[3] = {0, 0, 0};  // bytes of each Array still to produce
  bool kept = false;             // the parameters hold cache_options_.keep budget
};

Int4Quantization::Int4Quantization(std::string tensor, SourceView view, ops::Int4Scheme scheme, Int4CacheOptions cache)
    : tensor_(std::move(tensor)), view_(std::move(view)), scheme_(scheme), cache_options_(std::move(cache)),
      cache_(std::make_unique<Cache>()) {
  if (view_.shape.size() != 2 || !ops::int4_shape_problem(scheme_, view_.shape[0], view_.shape[1]).empty())
    throw std::logic_error("Int4Quantization: a shape the scheme cannot take for " + tensor_);
  geo_ = ops::int4_geometry(scheme_, view_.shape[0], view_.shape[1]);
  const uint64_t es = dtype_bits(view_.dtype) / 8;
  strip_rows_ = std::max<uint64_t>(8, cache_options_.strip_bytes / (geo_.k * es) / 8 * 8);
  const Int4Engine& engine = cache_options_.engine ? *cache_options_.engine : *cpu_int4_engine();
  qweight_cache_ = scheme_.format != ops::Int4Format::kCompressedTensors && engine.writes_qweight();
  // Whole pieces of ops::int4_quantize_qweight per strip where they fit (whole qweight lines).
  if (const uint64_t piece = scheme_.format == ops::Int4Format::kGptq ? 16 : 128; qweight_cache_ && strip_rows_ >= piece)
    strip_rows_ = strip_rows_ / piece * piece;
  cache_bytes_ = geo_.n * (cdiv(geo_.k, 8) * 4 + geo_.groups * sizeof(ops::Int4Params));
  const ops::Int4Shapes sh = ops::int4_shapes(scheme_, geo_.n, geo_.k);
  auto bytes = [](const std::vector<uint64_t>& shape, uint64_t elem) {
    return shape.empty() ? 0 : shape[0] * shape[1] * elem;
  };
  cache_->left[static_cast<int>(Array::kCodes)] = bytes(sh.weights, 4);
  cache_->left[static_cast<int>(Array::kScales)] = bytes(sh.scales, dtype_bits(scheme_.scale_dtype) / 8);
  cache_->left[static_cast<int>(Array::kZeros)] = bytes(sh.zeros, 4);
}

Int4Quantization::~Int4Quantization() {
  if (cache_->kept) cache_options_.keep->give(geo_.n * geo_.groups * sizeof(ops::Int4Params));
}

void Int4Quantization::compute_strips(const SourceReader& src, const std::vector<uint64_t>& strips, uint32_t* words,
                                      ops::Int4Params* params, ops::Fp8ErrorStats* stats) const {
  std::vector<Int4Engine::Strip> rows;
  for (uint64_t s : strips) rows.push_back({s * strip_rows_, std::min(strip_rows_, geo_.n - s * strip_rows_)});
  const Int4Engine& engine = cache_options_.engine ? *cache_options_.engine : *cpu_int4_engine();
  const SourceElements elements(src, view_);
  const ops::Int4Issue issue = qweight_cache_
                                   ? engine.quantize_strips_qweight(scheme_, geo_, rows, elements, words, params, stats)
                                   : engine.quantize_strips(scheme_, geo_, rows, elements, words, params, stats);
  if (issue) ops::int4_fail(issue, scheme_, view_.file >= 0 ? src.file(view_.file).path() : "", tensor_);
}

Int4Quantization::Rows Int4Quantization::rows(const SourceReader& src, uint64_t r0, uint64_t r1, bool words) const {
  if (!cached()) return {};
  Cache& c = *cache_;
  std::unique_lock<std::mutex> lock(c.m);
  if (c.state == Cache::State::kFresh) {
    // Every element is written by its strip before anyone reads it: no zero fill.
    const uint64_t nw = geo_.n * cdiv(geo_.k, 8), np = geo_.n * geo_.groups;
    if (const auto& pool = cache_options_.pool) {
      c.words = pool->get<uint32_t>(nw);
      c.params = pool->get<ops::Int4Params>(np);
    } else {
      c.words = std::make_shared_for_overwrite<uint32_t[]>(nw);
      c.params = std::make_shared_for_overwrite<ops::Int4Params[]>(np);
    }
    c.strips.assign(cdiv(geo_.n, strip_rows_), Cache::kFree);
    c.strip_stats.assign(c.strips.size(), {});
    c.state = Cache::State::kLive;
  }
  if (c.state == Cache::State::kGone || (words && c.state == Cache::State::kParamsOnly)) return {};
  if (c.state == Cache::State::kParamsOnly) return {nullptr, c.params};  // every strip is done
  const std::shared_ptr<uint32_t[]> w = c.words;
  const std::shared_ptr<ops::Int4Params[]> p = c.params;
  const uint64_t s0 = r0 / strip_rows_, s1 = cdiv(r1, strip_rows_);
  // Compute the strips nobody has claimed (the engine's number at a time), then wait for the ones
  // others are computing.
  const uint64_t per_claim = cache_options_.engine ? cache_options_.engine->strips_per_claim() : 1;
  for (uint64_t s = s0; s < s1;) {
    std::vector<uint64_t> claimed;
    for (; s < s1 && claimed.size() < per_claim; ++s)
      if (c.strips[s] == Cache::kFree) {
        c.strips[s] = Cache::kComputing;
        claimed.push_back(s);
      }
    if (claimed.empty()) continue;
    lock.unlock();
    std::vector<ops::Fp8ErrorStats> st(claimed.size());
    try {
      compute_strips(src, claimed, w.get(), p.get(), st.data());
    } catch (...) {
      lock.lock();
      for (uint64_t x : claimed) c.strips[x] = Cache::kFailed;
      if (!c.error) c.error = std::current_exception();
      c.cv.notify_all();
      throw;
    }
    lock.lock();
    for (size_t i = 0; i < claimed.size(); ++i) {
      c.strips[claimed[i]] = Cache::kDone;
      c.strip_stats[claimed[i]] = st[i];
    }
    c.cv.notify_all();
  }
  for (uint64_t s = s0; s < s1; ++s) {
    c.cv.wait(lock, [&] { return c.strips[s] == Cache::kDone || c.strips[s] == Cache::kFailed; });
    if (c.strips[s] == Cache::kFailed) std::rethrow_exception(c.error);
  }
  return {words ? w : nullptr, p};
}

void Int4Quantization::produced(Array a, uint64_t bytes) const {
  if (!cached()) return;
  std::lock_guard<std::mutex> lock(cache_->m);
  uint64_t& left = cache_->left[static_cast<int>(a)];
  left -= std::min(left, bytes);
  release_if_done();
}

void Int4Quantization::release_if_done() const {
  Cache& c = *cache_;
  const bool params_needed =
      c.left[static_cast<int>(Array::kScales)] + c.left[static_cast<int>(Array::kZeros)] > 0;
  const uint64_t params_bytes = geo_.n * geo_.groups * sizeof(ops::Int4Params);
  if (c.state == Cache::State::kLive && c.left[static_cast<int>(Array::kCodes)] == 0) {
    c.words.reset();  // every strip is done: the codes covered every row
    if (params_needed && cache_options_.keep && cache_options_.keep->take(params_bytes)) {
      c.kept = true;
      c.state = Cache::State::kParamsOnly;
    } else {
      c.params.reset();
      c.state = Cache::State::kGone;
    }
  }
  if (c.state == Cache::State::kParamsOnly && !params_needed) {
    c.params.reset();
    if (c.kept) cache_options_.keep->give(params_bytes);
    c.kept = false;
    c.state = Cache::State::kGone;
  }
}

void Int4Quantization::run(const SourceReader& src, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1, uint64_t kb,
                           uint64_t ke, uint64_t ks, uint64_t slot, const StripFn& each) const {
  const uint64_t es = dtype_bits(view_.dtype) / 8;
  const uint64_t cols = c1 - c0, ngroups = cols / geo_.group, nwords = cdiv(ke - kb, 8);
  // Rows per strip from the whole row: a K-stripe's reads span the rows' full width.
  const uint64_t strip = strip_rows_;
  const SourceView cv = cols == geo_.k ? view_ : view_.narrow(1, c0, cols);
  std::vector<uint8_t> in;
  std::vector<ops::Int4Params> params;
  std::vector<uint32_t> words;
  ops::Fp8ErrorStats total;
  for (uint64_t r = r0; r < r1; r += strip) {
    const uint64_t rows = std::min(strip, r1 - r);
    in.resize(rows * cols * es);
    src.gather(cv, r * cols, rows * cols, in.data());
    params.resize(rows * ngroups);
    words.resize(rows * nwords);
    const ops::Int4Source block{in.data(), view_.dtype, cols, r, rows, c0, cols};
    ops::Int4Issue issue;
    if (ks > kb) {  // columns [kb, ks) without stats, then [ks, ke) with
      issue = ops::int4_quantize_fast(scheme_, geo_, block, kb, ks, params.data(), words.data(), nwords, nullptr);
      if (!issue && ke > ks)
        issue = ops::int4_quantize_fast(scheme_, geo_, block, ks, ke, params.data(), words.data() + (ks - kb) / 8,
                                        nwords, &total);
    } else {
      issue = ops::int4_quantize_fast(scheme_, geo_, block, kb, ke, params.data(), words.data(), nwords,
                                      ke > ks ? &total : nullptr);
    }
    if (issue) ops::int4_fail(issue, scheme_, view_.file >= 0 ? src.file(view_.file).path() : "", tensor_);
    each(r, rows, params.data(), words.data());
  }
  if (ke > ks) add_stats(slot, total);
}

void Int4Quantization::add_stats(uint64_t slot, const ops::Fp8ErrorStats& s) const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_[slot].merge(s);
}

ops::Fp8ErrorStats Int4Quantization::stats() const {
  ops::Fp8ErrorStats total;
  if (cached()) {
    std::lock_guard<std::mutex> lock(cache_->m);
    for (const auto& s : cache_->strip_stats) total.merge(s);
    return total;
  }
  std::lock_guard<std::mutex> lock(stats_mutex_);
  for (const auto& [slot, s] : stats_) total.merge(s);
  return total;
}

std::shared_ptr<Producer> int4_codes_producer(std::shared_ptr<const Int4Quantization> q) {
  const ops::Int4Shapes sh = ops::int4_shapes(q->scheme(), q->geometry().n, q->geometry().k);
  const bool ct = q->scheme().format == ops::Int4Format::kCompressedTensors;
  return std::make_shared<Int4Producer>(q, sh.weights[0] * sh.weights[1], 4, "int4 packed codes",
                                        ct ? Int4Producer::Fn(ct_codes) : Int4Producer::Fn(kpacked_codes),
                                        Int4Quantization::Array::kCodes);
}

std::shared_ptr<Producer> int4_scales_producer(std::shared_ptr<const Int4Quantization> q) {
  const ops::Int4Shapes sh = ops::int4_shapes(q->scheme(), q->geometry().n, q->geometry().k);
  return std::make_shared<Int4Producer>(q, sh.scales[0] * sh.scales[1], dtype_bits(q->scheme().scale_dtype) / 8,
                                        "int4 scales", scales_chunk, Int4Quantization::Array::kScales);
}

std::shared_ptr<Producer> int4_zeros_producer(std::shared_ptr<const Int4Quantization> q) {
  const ops::Int4Shapes sh = ops::int4_shapes(q->scheme(), q->geometry().n, q->geometry().k);
  return std::make_shared<Int4Producer>(q, sh.zeros[0] * sh.zeros[1], 4, "int4 zero points", zeros_chunk,
                                        Int4Quantization::Array::kZeros);
}

std::shared_ptr<Producer> int4_g_idx_producer(std::shared_ptr<const Int4Quantization> q) {
  return std::make_shared<Int4Producer>(q, q->geometry().k, 4, "gptq g_idx",
                                        [](const Int4Quantization& q, const SourceReader&, uint64_t e0, uint64_t e1,
                                           uint8_t* out) {
                                          std::vector<int32_t> v(e1 - e0);
                                          ops::int4_store_g_idx(q.geometry(), e0, e1, v.data());
                                          std::memcpy(out, v.data(), v.size() * 4);
                                        });
}

std::shared_ptr<Producer> int4_weight_shape_producer(std::shared_ptr<const Int4Quantization> q) {
  return std::make_shared<Int4Producer>(q, 2, 8, "compressed-tensors weight_shape",
                                        [](const Int4Quantization& q, const SourceReader&, uint64_t e0, uint64_t e1,
                                           uint8_t* out) {
                                          const int64_t shape[2] = {static_cast<int64_t>(q.geometry().n),
                                                                    static_cast<int64_t>(q.geometry().k)};
                                          std::memcpy(out, shape + e0, (e1 - e0) * 8);
                                        });
}

}  // namespace ckpt
