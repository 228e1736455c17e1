#include "commands/marlin.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

#include "commands/hf_layout.h"
#include "commands/rechunk.h"
#include "core/error.h"
#include "core/file_io.h"
#include "ops/int4_producers.h"
#include "ops/int4_quant.h"
#include "ops/marlin_layout.h"

namespace ckpt {

namespace {

using ops::MarlinSource;
using Perm = std::shared_ptr<const std::vector<int32_t>>;

// Idle whole-codes arrays kept for the next weights (Int4BufferPool): room for a few 7B-class
// Linears' codes (14336 x 4096: 29 MB).
constexpr uint64_t kWholeCodesIdleBytes = 96ull << 20;

MarlinSource marlin_source(quant::Format f) {
  switch (f) {
    case quant::Format::kGptq: return MarlinSource::kGptq;
    case quant::Format::kAwq: return MarlinSource::kAwq;
    default: return MarlinSource::kCompressedTensors;
  }
}
MarlinSource marlin_source(ops::Int4Format f) {
  switch (f) {
    case ops::Int4Format::kGptq: return MarlinSource::kGptq;
    case ops::Int4Format::kAwq: return MarlinSource::kAwq;
    default: return MarlinSource::kCompressedTensors;
  }
}

std::vector<uint8_t> read_view(const SourceReader& src, const SourceView& v) {
  std::vector<uint8_t> b(v.nbytes());
  src.gather(v, 0, v.numel(), b.data());
  return b;
}

std::vector<uint32_t> read_words(const SourceReader& src, const SourceView& v) {
  std::vector<uint32_t> w(v.numel());
  src.gather(v, 0, v.numel(), reinterpret_cast<uint8_t*>(w.data()));
  return w;
}

// The words of `v` in `buf`, a buffer its thread keeps: the relayout reads a block's source words
// for every 1 MiB block of output, and a fresh vector each time paid a zero fill and, on the PVM
// guest, page faults (about 15 us per 4 KiB page) for every block.
const uint32_t* read_words_into(const SourceReader& src, const SourceView& v, std::vector<uint32_t>& buf) {
  if (buf.size() < v.numel()) buf.resize(v.numel());
  src.gather(v, 0, v.numel(), reinterpret_cast<uint8_t*>(buf.data()));
  return buf.data();
}

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A tensor made whole in memory from the sources (scales, zeros, g_idx, bias: small next to
// the codes), each chunk copied from it.
class WholeProducer final : public Producer {
 public:
  using Make = std::function<std::vector<uint8_t>(const SourceReader&)>;
  WholeProducer(uint64_t nbytes, Make make, std::string what) : nbytes_(nbytes), make_(std::move(make)), what_(std::move(what)) {}
  uint64_t nbytes() const override { return nbytes_; }
  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override {
    const std::vector<uint8_t> b = make_(src);
    if (b.size() != nbytes_) throw std::logic_error("marlin: " + what_ + " made the wrong size");
    std::memcpy(out, b.data() + begin, n);
  }
  ojson describe() const override { return {{"op", what_}}; }

 private:
  uint64_t nbytes_;
  Make make_;
  std::string what_;
};

std::shared_ptr<Producer> constant(std::vector<uint8_t> bytes, std::string what) {
  auto b = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  const uint64_t n = b->size();
  return std::make_shared<WholeProducer>(n, [b](const SourceReader&) { return *b; }, std::move(what));
}

// A tensor computed in units of whole rows (`unit_bytes` each): a chunk computes the units it
// touches and keeps its part of them.
class UnitProducer : public Producer {
 public:
  UnitProducer(uint64_t units, uint64_t unit_bytes, std::string what)
      : units_(units), unit_bytes_(unit_bytes), what_(std::move(what)) {}
  uint64_t nbytes() const override { return units_ * unit_bytes_; }
  // The whole units inside [begin, begin + n) are made in place; a unit cut by either end (the
  // executor's 1 MiB blocks rarely fall on unit boundaries: a K-tile row of a 5632-wide Linear is
  // 44 KiB) is made in a buffer the thread keeps, and its part copied. Making the whole range in
  // the buffer and copying it all cost a second pass over every block.
  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override {
    const uint64_t ub = unit_bytes_, end = begin + n;
    thread_local std::vector<uint32_t> buf;  // kept, as read_words_into's
    auto through_buffer = [&](uint64_t u0, uint64_t u1) {
      if (buf.size() < (u1 - u0) * ub / 4) buf.resize((u1 - u0) * ub / 4);
      units(src, u0, u1, buf.data());
      const uint64_t lo = std::max(begin, u0 * ub), hi = std::min(end, u1 * ub);
      std::memcpy(out + (lo - begin), reinterpret_cast<const uint8_t*>(buf.data()) + (lo - u0 * ub), hi - lo);
    };
    if ((reinterpret_cast<uintptr_t>(out) - begin) % 4 != 0) return through_buffer(begin / ub, (end + ub - 1) / ub);
    const uint64_t a = (begin + ub - 1) / ub, b = std::max(a, end / ub);  // the whole units: [a, b)
    if (begin < a * ub) through_buffer(a - 1, a);
    if (a < b) units(src, a, b, reinterpret_cast<uint32_t*>(out + (a * ub - begin)));
    if (b * ub < end) through_buffer(b, b + 1);
  }
  ojson describe() const override { return {{"op", what_}}; }

 protected:
  virtual void units(const SourceReader& src, uint64_t u0, uint64_t u1, uint32_t* out) const = 0;

 private:
  uint64_t units_, unit_bytes_;
  std::string what_;
};

// compressed-tensors stores the codes [N, K/8], so the words of a K-tile are a column stripe of
// every row (and, for --undo, 64 output rows are a column stripe of every Marlin K-tile row): read
// stripe by stripe, each 1 MB block of output would map and fault in the whole tensor again (the
// relayout ran at 6x cp, --undo at 9.6x). So one weight's codes are read once, contiguously, into
// memory shared by its chunks, and dropped when every output byte has been produced (a later
// reader, in a pipeline, reads them again). Above MarlinOptions::whole_codes_max_bytes the stripe
// reads stay. The arrays come from one pool per plan (Int4BufferPool, as the INT4 quantizer's
// caches): a fresh zero-filled vector per weight cost a page fault per 4 KiB (7.4k faults, about
// 15 us each on the PVM guest, for a 0.76 GB compressed-tensors checkpoint).

struct WholeCodesOptions {
  uint64_t max_bytes;                     // MarlinOptions::whole_codes_max_bytes
  std::shared_ptr<Int4BufferPool> pool;  // where the arrays come from
};

class WholeCodes {
 public:
  WholeCodes(SourceView codes, uint64_t output_bytes, std::shared_ptr<Int4BufferPool> pool)
      : codes_(std::move(codes)), output_bytes_(output_bytes), pool_(std::move(pool)) {}
  std::shared_ptr<const uint32_t[]> get(const SourceReader& src) {
    std::lock_guard<std::mutex> lock(m_);
    if (!words_) {
      std::shared_ptr<uint32_t[]> w = pool_->get<uint32_t>(codes_.numel());
      src.gather(codes_, 0, codes_.numel(), reinterpret_cast<uint8_t*>(w.get()));
      words_ = std::move(w);
    }
    return words_;
  }
  void produced(uint64_t n) {
    std::lock_guard<std::mutex> lock(m_);
    if ((done_ += n) < output_bytes_) return;
    words_.reset();
    done_ = 0;
  }

 private:
  SourceView codes_;
  uint64_t output_bytes_;
  std::shared_ptr<Int4BufferPool> pool_;
  std::mutex m_;
  std::shared_ptr<const uint32_t[]> words_;
  uint64_t done_ = 0;
};

// Source codes -> Marlin qweight, one K-tile row (2N words) per unit. With act-order the rows a
// tile needs (perm[k] for its 16 k) are read one source word-row (GPTQ) or column
// (compressed-tensors) at a time into a compact array, gathered into sorted GPTQ-layout rows and
// repacked.
class MarlinCodes final : public UnitProducer {
 public:
  MarlinCodes(MarlinSource source, SourceView codes, uint64_t n, uint64_t k, Perm perm, const WholeCodesOptions& whole)
      : UnitProducer(k / 16, 2 * n * 4, std::string("marlin repack from ") + name(source) + (perm ? " act-order" : "")),
        source_(source), codes_(std::move(codes)), n_(n), k_(k), perm_(std::move(perm)) {
    if (source_ == MarlinSource::kCompressedTensors && !perm_ && codes_.nbytes() <= whole.max_bytes)
      whole_ = std::make_unique<WholeCodes>(codes_, nbytes(), whole.pool);
  }

  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override {
    UnitProducer::produce(src, begin, n, out);
    if (whole_) whole_->produced(n);
  }

 private:
  static const char* name(MarlinSource s) {
    return s == MarlinSource::kGptq ? "gptq" : s == MarlinSource::kAwq ? "awq" : "compressed-tensors";
  }
  void units(const SourceReader& src, uint64_t kt0, uint64_t kt1, uint32_t* out) const override {
    const uint64_t kts = kt1 - kt0;
    thread_local std::vector<uint32_t> buf;
    if (!perm_) {
      switch (source_) {
        case MarlinSource::kGptq: {
          const uint32_t* w = read_words_into(src, codes_.narrow(0, 2 * kt0, 2 * kts), buf);
          return ops::marlin_repack(source_, w, n_, n_, k_, kt0, kt1, out);
        }
        case MarlinSource::kAwq: {
          const uint32_t* w = read_words_into(src, codes_.narrow(0, 16 * kt0, 16 * kts), buf);
          return ops::marlin_repack(source_, w, n_ / 8, n_, k_, kt0, kt1, out);
        }
        case MarlinSource::kCompressedTensors: {
          if (whole_) {
            const auto w = whole_->get(src);
            return ops::marlin_repack(source_, w.get() + 2 * kt0, k_ / 8, n_, k_, kt0, kt1, out);
          }
          const uint32_t* w = read_words_into(src, codes_.narrow(1, 2 * kt0, 2 * kts), buf);
          return ops::marlin_repack(source_, w, 2 * kts, n_, k_, kt0, kt1, out);
        }
      }
    }
    const std::vector<int32_t>& perm = *perm_;
    const uint64_t k0 = 16 * kt0, k1 = 16 * kt1;
    std::vector<uint64_t> words;
    for (uint64_t kk = k0; kk < k1; ++kk) words.push_back(static_cast<uint64_t>(perm[kk]) / 8);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    const uint64_t m = words.size();
    std::vector<int32_t> local(k1, 0);  // perm re-pointed into the compact array
    for (uint64_t kk = k0; kk < k1; ++kk) {
      const uint64_t w = static_cast<uint64_t>(perm[kk]) / 8;
      const uint64_t j = static_cast<uint64_t>(std::lower_bound(words.begin(), words.end(), w) - words.begin());
      local[kk] = static_cast<int32_t>(8 * j + static_cast<uint64_t>(perm[kk]) % 8);
    }
    std::vector<uint32_t> compact(m * n_);
    uint64_t stride = n_;
    for (uint64_t j = 0; j < m; ++j) {
      if (source_ == MarlinSource::kGptq) {
        src.gather(codes_.narrow(0, words[j], 1), 0, n_, reinterpret_cast<uint8_t*>(compact.data() + j * n_));
      } else {
        const auto col = read_words(src, codes_.narrow(1, words[j], 1));
        for (uint64_t r = 0; r < n_; ++r) compact[r * m + j] = col[r];
        stride = m;
      }
    }
    std::vector<uint32_t> sorted((k1 - k0) / 8 * n_);
    ops::marlin_gather_sorted_k(source_, compact.data(), stride, n_, k_, local.data(), k0, k1, sorted.data(), n_);
    ops::marlin_repack(MarlinSource::kGptq, sorted.data(), n_, n_, k_, kt0, kt1, out);
  }

  MarlinSource source_;
  SourceView codes_;
  uint64_t n_, k_;
  Perm perm_;
  std::unique_ptr<WholeCodes> whole_;  // compressed-tensors without act-order, up to whole_max
};

// Marlin qweight -> source codes: units of one K-tile (GPTQ: 2 qweight rows, AWQ: 16) or, for
// compressed-tensors' [N, K/8], of 64 output rows (one Marlin column tile across every K-tile).
class MarlinUncodes final : public UnitProducer {
 public:
  MarlinUncodes(MarlinSource target, SourceView marlin, uint64_t n, uint64_t k, const WholeCodesOptions& whole)
      : UnitProducer(target == MarlinSource::kCompressedTensors ? n / 64 : k / 16,
                     target == MarlinSource::kCompressedTensors ? 64 * (k / 8) * 4 : 2 * n * 4, "marlin unpack"),
        target_(target), marlin_(std::move(marlin)), n_(n), k_(k) {
    if (target_ == MarlinSource::kCompressedTensors && marlin_.nbytes() <= whole.max_bytes)
      whole_ = std::make_unique<WholeCodes>(marlin_, nbytes(), whole.pool);
  }

  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override {
    UnitProducer::produce(src, begin, n, out);
    if (whole_) whole_->produced(n);
  }

 private:
  void units(const SourceReader& src, uint64_t u0, uint64_t u1, uint32_t* out) const override {
    if (target_ == MarlinSource::kCompressedTensors) {
      // Every K-tile's words of Marlin columns [128 u0, 128 u1): a column stripe of the tiles,
      // unpacked in place from the whole array where it was read (see WholeCodes), else read.
      const uint64_t sub_n = 64 * (u1 - u0), width = 2 * sub_n;
      if (whole_) {
        const auto all = whole_->get(src);
        return ops::marlin_unpack(target_, all.get() + 128 * u0, 2 * n_, sub_n, k_, 0, k_ / 16, out, k_ / 8);
      }
      thread_local std::vector<uint32_t> buf;
      const uint32_t* w = read_words_into(src, marlin_.narrow(1, 128 * u0, width), buf);
      return ops::marlin_unpack(target_, w, width, sub_n, k_, 0, k_ / 16, out, k_ / 8);
    }
    thread_local std::vector<uint32_t> buf;
    const uint32_t* w = read_words_into(src, marlin_.narrow(0, u0, u1 - u0), buf);
    ops::marlin_unpack(target_, w, 2 * n_, n_, k_, u0, u1, out, target_ == MarlinSource::kGptq ? n_ : n_ / 8);
  }

  MarlinSource target_;
  SourceView marlin_;
  uint64_t n_, k_;
  std::unique_ptr<WholeCodes> whole_;  // compressed-tensors, up to whole_max
};

// Act-order codes back in the checkpoint's row order: every source row can come from any
// K-tile, so the whole tensor is unpacked for each chunk (one chunk for most Linears).
std::shared_ptr<Producer> act_order_uncodes(const MarlinLinearGeometry& g, SourceView marlin, Perm perm) {
  return std::make_shared<WholeProducer>(
      g.k / 8 * g.n * 4,
      [=](const SourceReader& src) { return bytes_of(marlin_source_codes(g, read_words(src, marlin).data(), perm->data())); },
      "marlin unpack act-order");
}

// [rows, cols] of es-byte elements -> [cols, rows].
std::vector<uint8_t> transpose_elems(const std::vector<uint8_t>& in, size_t es, uint64_t rows, uint64_t cols) {
  std::vector<uint8_t> out(in.size());
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t c = 0; c < cols; ++c) std::memcpy(&out[(c * rows + r) * es], &in[(r * cols + c) * es], es);
  return out;
}

// One quantized Linear as both directions see it.
struct LinearTensors {
  uint64_t n = 0, k = 0, groups = 0;
  int64_t group_size = -1;  // marlin_permute_scales' argument: -1 for channelwise
  std::map<std::string, const TensorRef*> parts;  // by suffix
};

class Planner {
 public:
  Planner(const Checkpoint& ck, uint64_t whole_codes_max)
      : whole{whole_codes_max, std::make_shared<Int4BufferPool>(kWholeCodesIdleBytes)}, ck_(ck), reader_(source_paths(ck)) {
    for (const auto& t : ck.tensors) by_name_[t.name] = &t;
  }

  const WholeCodesOptions whole;
  std::string file_of(const TensorRef& t) const { return t.view.file >= 0 ? ck_.files[t.view.file].path : ck_.path; }
  [[noreturn]] void refuse(const TensorRef& t, const std::string& why) const { fail(Errc::kUnsupported, file_of(t), t.name, why); }

  const TensorRef* find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  const TensorRef& need(const std::string& name, const TensorRef& beside) const {
    const TensorRef* t = find(name);
    if (!t) fail(Errc::kInvalidArgument, file_of(beside), name, "missing: the quantized Linear " + beside.name + " needs it");
    return *t;
  }
  void expect(const TensorRef& t, DType d, const std::vector<uint64_t>& shape) const {
    if (t.dtype() != d || t.shape() != shape)
      fail(Errc::kInvalidArgument, file_of(t), t.name,
           "is " + std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()) + ", the format needs " +
               std::string(dtype_name(d)) + " " + shape_to_string(shape));
  }
  template <typename T>
  std::vector<T> values(const TensorRef& t) const {
    std::vector<T> v(t.view.numel());
    reader_.gather(t.view, 0, v.size(), reinterpret_cast<uint8_t*>(v.data()));
    return v;
  }

  // The shape checks of the repack (gptq_marlin_repack's TORCH_CHECKs) and of vLLM's Marlin
  // layer admission.
  void check_kernel_shape(const TensorRef& codes, const LinearTensors& l) const {
    const std::string why = ops::marlin_kernel_shape_problem(l.n, l.k, l.group_size);
    if (!why.empty()) refuse(codes, "no Marlin layout: " + why);
  }

  const Checkpoint& ck_;
  SourceReader reader_;
  std::map<std::string, const TensorRef*> by_name_;
};

std::string strip_suffix(const std::string& name, const std::string& suffix) {
  if (name.size() > suffix.size() + 1 && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
      name[name.size() - suffix.size() - 1] == '.')
    return name.substr(0, name.size() - suffix.size() - 1);
  return "";
}

using Names = MarlinTensorNames;
Names names_of(quant::Format f) { return marlin_tensor_names(f); }
const std::string kSortIndices = MarlinTensorNames{}.sort_indices;

std::shared_ptr<Producer> bias_producer(const TensorRef& b, uint64_t n, bool inverse) {
  const size_t es = dtype_bits(b.dtype()) / 8;
  const SourceView v = b.view;
  return std::make_shared<WholeProducer>(
      b.nbytes(),
      [=](const SourceReader& src) {
        const auto in = read_view(src, v);
        std::vector<uint8_t> out(in.size());
        if (inverse) ops::marlin_unpermute_bias(in.data(), es, n, out.data());
        else ops::marlin_permute_bias(in.data(), es, n, out.data());
        return out;
      },
      inverse ? "marlin unpermute bias" : "marlin_permute_bias");
}

// ---- source format -> Marlin ----------------------------------------------------------------

void plan_forward(Planner& p, const quant::Scheme& s, std::vector<OutputTensor>& out, uint64_t& linears) {
  const Names nm = names_of(s.format);
  const MarlinSource src_kind = marlin_source(s.format);
  const bool gptq = s.format == quant::Format::kGptq;
  const int zero_offset = gptq && !s.gptq_v2 ? 1 : 0;
  std::map<std::string, bool> consumed;
  for (const auto& t : p.ck_.tensors) {
    const std::string m = strip_suffix(t.name, nm.codes);
    if (m.empty()) continue;
    LinearTensors l;
    const TensorRef& scales = p.need(m + "." + nm.scales, t);
    if (t.shape().size() != 2) p.refuse(t, "codes must be 2-D");
    switch (s.format) {
      case quant::Format::kGptq: l.k = 8 * t.shape()[0], l.n = t.shape()[1]; break;
      case quant::Format::kAwq: l.k = t.shape()[0], l.n = 8 * t.shape()[1]; break;
      default: {
        const TensorRef& shape = p.need(m + ".weight_shape", t);
        p.expect(shape, DType::I64, {2});
        const auto v = p.values<int64_t>(shape);
        if (v[0] <= 0 || v[1] <= 0) p.refuse(shape, "weight_shape must hold two positive sizes");
        l.n = static_cast<uint64_t>(v[0]), l.k = static_cast<uint64_t>(v[1]);
      }
    }
    l.group_size = s.granularity == quant::Granularity::kChannel ? -1 : static_cast<int64_t>(s.group_size);
    l.groups = s.granularity == quant::Granularity::kChannel ? 1 : l.k / s.group_size;
    p.check_kernel_shape(t, l);
    // Every part the format stores, with its dtype and shape.
    for (const auto& part : s.linear_parts(l.n, l.k, scales.dtype())) {
      const TensorRef& pt = p.need(m + "." + part.suffix, t);
      p.expect(pt, part.dtype, part.shape);
      l.parts[part.suffix] = &pt;
    }
    if (s.act_order && !gptq) {
      const TensorRef& g = p.need(m + "." + nm.g_idx, t);
      p.expect(g, DType::I32, {l.k});
      l.parts[nm.g_idx] = &g;
    }
    for (const auto& [suffix, pt] : l.parts) consumed[pt->name] = true;
    ++linears;

    // act-order: the stable sort of g_idx (marlin_sort_g_idx); otherwise GPTQ's g_idx must be
    // the trivial k / group that vLLM drops (and --undo writes back).
    Perm perm;
    if (l.parts.count(nm.g_idx)) {
      const TensorRef& g = *l.parts[nm.g_idx];
      const auto gi = p.values<int32_t>(g);
      if (s.act_order) {
        std::vector<int32_t> sorted(l.k), pm(l.k);
        if (!ops::marlin_sort_g_idx(gi.data(), l.k, l.groups, sorted.data(), pm.data()))
          p.refuse(g, "a group index lies outside [0, " + std::to_string(l.groups) + ")");
        out.push_back({g.name, DType::I32, {l.k}, constant(bytes_of(sorted), "marlin_sort_g_idx: g_idx sorted (stable)")});
        out.push_back({m + "." + kSortIndices, DType::I32, {l.k}, constant(bytes_of(pm), "marlin_sort_g_idx: sort indices")});
        perm = std::make_shared<const std::vector<int32_t>>(std::move(pm));
      } else {
        for (uint64_t i = 0; i < l.k; ++i)
          if (gi[i] != static_cast<int32_t>(i / (l.k / l.groups)))
            p.refuse(g, "g_idx is not k / group_size but desc_act is false; vLLM would ignore it: say desc_act true or fix g_idx");
      }
    }
    out.push_back({t.name, DType::I32, {l.k / 16, 2 * l.n}, std::make_shared<MarlinCodes>(src_kind, t.view, l.n, l.k, perm, p.whole)});

    const size_t es = dtype_bits(scales.dtype()) / 8;
    const SourceView sv = scales.view;
    const bool ct = s.format == quant::Format::kCompressedTensors;
    out.push_back({scales.name, scales.dtype(), {l.groups, l.n},
                   std::make_shared<WholeProducer>(
                       scales.nbytes(),
                       [=](const SourceReader& src) {
                         auto in = read_view(src, sv);
                         if (ct) in = transpose_elems(in, es, l.n, l.groups);  // [N, G] -> [G, N], as vLLM permutes
                         std::vector<uint8_t> o(in.size());
                         ops::marlin_permute_scales(in.data(), es, l.n, l.k, l.group_size, 0, l.groups, o.data());
                         return o;
                       },
                       "marlin_permute_scales")});

    if (l.parts.count(nm.zeros)) {
      const TensorRef& z = *l.parts[nm.zeros];
      if (s.symmetric) {
        // Symmetric GPTQ stores a constant zero (8; v1 writes 7) that vLLM never reads: dropped,
        // written back by --undo, so only the constant is accepted.
        const uint32_t want = s.gptq_v2 ? 0x88888888u : 0x77777777u;
        for (uint32_t w : p.values<uint32_t>(z))
          if (w != want)
            p.refuse(z, "qzeros of a symmetric GPTQ checkpoint are not the constant zero point (" +
                            std::string(s.gptq_v2 ? "0x88888888" : "0x77777777") + ") that --undo would restore");
      } else {
        const SourceView zv = z.view;
        const std::string zfile = p.file_of(z), zname = z.name;
        out.push_back({z.name, DType::I32, {l.groups, l.n / 8},
                       std::make_shared<WholeProducer>(
                           l.groups * l.n / 8 * 4,
                           [=](const SourceReader& src) {
                             const auto w = read_words(src, zv);
                             std::vector<uint32_t> o(l.groups * l.n / 8);
                             if (!ops::marlin_zero_points_from(src_kind, zero_offset, w.data(), l.groups, l.n, o.data()))
                               fail(Errc::kUnsupported, zfile, zname,
                                    "a GPTQ v1 zero point of 0 (stored 0xF) reads as 16, which Marlin's uint4 zero "
                                    "points cannot hold");
                             return bytes_of(o);
                           },
                           "marlin_zero_points")});
      }
    }
    if (const TensorRef* ws = l.parts.count("weight_shape") ? l.parts["weight_shape"] : nullptr)
      out.push_back({ws->name, ws->dtype(), ws->shape(), copy_of(*ws)});
    if (const TensorRef* b = p.find(m + ".bias")) {
      p.expect(*b, b->dtype(), {l.n});
      consumed[b->name] = true;
      out.push_back({b->name, b->dtype(), b->shape(), bias_producer(*b, l.n, false)});
    }
  }
  for (const auto& t : p.ck_.tensors)
    if (!consumed.count(t.name)) out.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
}

// ---- Marlin -> source format ----------------------------------------------------------------

void plan_undo(Planner& p, const quant::Scheme& s, std::vector<OutputTensor>& out, uint64_t& linears) {
  const Names nm = names_of(s.format);
  const MarlinSource kind = marlin_source(s.format);
  const bool gptq = s.format == quant::Format::kGptq;
  std::map<std::string, bool> consumed;
  for (const auto& t : p.ck_.tensors) {
    const std::string m = strip_suffix(t.name, nm.codes);
    if (m.empty()) continue;
    if (t.dtype() != DType::I32 || t.shape().size() != 2 || t.shape()[1] % 128 != 0)
      p.refuse(t, "is not a Marlin qweight I32 [K/16, 2N]");
    LinearTensors l;
    l.k = 16 * t.shape()[0], l.n = t.shape()[1] / 2;
    l.group_size = s.granularity == quant::Granularity::kChannel ? -1 : static_cast<int64_t>(s.group_size);
    l.groups = s.granularity == quant::Granularity::kChannel ? 1 : l.k / s.group_size;
    const TensorRef& scales = p.need(m + "." + nm.scales, t);
    p.expect(scales, scales.dtype(), {l.groups, l.n});
    consumed[t.name] = consumed[scales.name] = true;
    ++linears;
    const std::vector<quant::Part> parts = s.linear_parts(l.n, l.k, scales.dtype());
    auto part_of = [&](quant::PartRole r) -> const quant::Part* {
      for (const auto& x : parts)
        if (x.role == r) return &x;
      return nullptr;
    };

    const MarlinLinearGeometry geo = marlin_linear_geometry(s.int4(scales.dtype()), l.n, l.k);
    Perm perm;
    if (s.act_order) {
      const TensorRef& g = p.need(m + "." + nm.g_idx, t);
      const TensorRef& si = p.need(m + "." + kSortIndices, t);
      p.expect(g, DType::I32, {l.k});
      p.expect(si, DType::I32, {l.k});
      consumed[g.name] = consumed[si.name] = true;
      auto pm = p.values<int32_t>(si);
      std::vector<int32_t> gi;
      if (std::string why = marlin_source_g_idx(p.values<int32_t>(g).data(), pm.data(), l.k, gi); !why.empty())
        p.refuse(si, why);
      out.push_back({g.name, DType::I32, {l.k}, constant(bytes_of(gi), "g_idx in checkpoint order")});
      perm = std::make_shared<const std::vector<int32_t>>(std::move(pm));
    } else if (gptq) {
      out.push_back({m + "." + nm.g_idx, DType::I32, {l.k}, constant(bytes_of(marlin_trivial_g_idx(geo)), "g_idx = k / group_size")});
    }
    const quant::Part* codes = part_of(quant::PartRole::kCodes);
    out.push_back({t.name, DType::I32, codes->shape,
                   perm ? act_order_uncodes(geo, t.view, perm)
                        : std::shared_ptr<Producer>(std::make_shared<MarlinUncodes>(kind, t.view, l.n, l.k, p.whole))});

    const size_t es = dtype_bits(scales.dtype()) / 8;
    const SourceView sv = scales.view;
    out.push_back({scales.name, scales.dtype(), part_of(quant::PartRole::kScale)->shape,
                   std::make_shared<WholeProducer>(
                       scales.nbytes(),
                       [=](const SourceReader& src) { return marlin_source_scales(geo, read_view(src, sv).data(), es); },
                       "marlin unpermute scales")});

    if (const quant::Part* zp = part_of(quant::PartRole::kZero)) {
      if (s.symmetric) {
        out.push_back({m + "." + zp->suffix, DType::I32, zp->shape,
                       constant(bytes_of(marlin_symmetric_gptq_zeros(geo)), "symmetric GPTQ qzeros")});
      } else {
        const TensorRef& z = p.need(m + "." + zp->suffix, t);
        p.expect(z, DType::I32, {l.groups, l.n / 8});
        consumed[z.name] = true;
        const SourceView zv = z.view;
        out.push_back({z.name, DType::I32, zp->shape,
                       std::make_shared<WholeProducer>(
                           z.nbytes(),
                           [=](const SourceReader& src) { return bytes_of(marlin_source_zeros(geo, read_words(src, zv).data())); },
                           "marlin unpack zero points")});
      }
    }
    if (const TensorRef* b = p.find(m + ".bias")) {
      p.expect(*b, b->dtype(), {l.n});
      consumed[b->name] = true;
      out.push_back({b->name, b->dtype(), b->shape(), bias_producer(*b, l.n, true)});
    }
  }
  for (const auto& t : p.ck_.tensors)
    if (!consumed.count(t.name)) out.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
}

const SideFile* side_file(const Checkpoint& ck, const std::string& name) {
  for (const auto& f : ck.side_files)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace

MarlinPlan plan_marlin(const Checkpoint& ck, const MarlinOptions& o) {
  const std::string label = ck.path + "/config.json";
  if (!ck.config || !ck.config->is_object())
    fail(Errc::kUnsupported, label, "", "config.json is missing: the quantization_config says what the tensors are");
  const ojson& config = *ck.config;
  const ojson* qc = config.contains("quantization_config") ? &config["quantization_config"] : nullptr;
  const bool is_marlin = is_marlin_config(&config);
  if (config.contains("ckpt_parallel"))
    fail(Errc::kUnsupported, label, "",
         "a tensor/pipeline-parallel output: run ckpt marlin on each rank directory (what vLLM's per-rank repack does)");

  MarlinPlan mp;
  mp.plan.command = o.undo ? "marlin --undo" : "marlin";
  set_plan_sources(mp.plan, ck);
  Planner p(ck, o.whole_codes_max_bytes);
  std::vector<OutputTensor> tensors;
  std::map<std::string, std::string> replaced;
  std::optional<std::string> quantize_config;  // --undo: quantize_config.json to write back

  if (!o.undo) {
    if (is_marlin) fail(Errc::kUnsupported, label, "", "the checkpoint is already in the Marlin layout (--undo reverses it)");
    mp.source_scheme = quant::read_scheme(&config, label);
    if (mp.source_scheme.method != quant::Method::kInt4)
      fail(Errc::kUnsupported, label, "",
           "not an INT4 checkpoint (" + mp.source_scheme.describe() + "): ckpt marlin relayouts gptq, awq and "
           "compressed-tensors pack-quantized weights (ckpt quantize --int4 writes them)");
    plan_forward(p, mp.source_scheme, tensors, mp.linears);
    ojson marlin = ojson::object();
    marlin["quant_method"] = kMarlinQuantMethod;
    marlin["layout"] = "vLLM Marlin W4A16 as after process_weights_after_loading (gptq_marlin_repack / "
                       "awq_marlin_repack, marlin_permute_scales, marlin_zero_points, stable marlin_sort_g_idx)";
    marlin["source_quantization_config"] = *qc;
    if (const SideFile* f = side_file(ck, "quantize_config.json"))
      marlin["source_quantize_config"] = ojson::parse(side_file_text(*f));
    replaced["config.json"] = quant::config_with_quantization(config, marlin);
  } else {
    if (!is_marlin)
      fail(Errc::kUnsupported, label, "", "--undo: quantization_config.quant_method is not " + std::string(kMarlinQuantMethod) +
                                              " (not a ckpt marlin output)");
    mp.source_scheme = marlin_source_scheme(config, label);  // checks source_quantization_config first
    const ojson& source_qc = (*qc)["source_quantization_config"];
    plan_undo(p, mp.source_scheme, tensors, mp.linears);
    replaced["config.json"] = quant::config_with_quantization(config, source_qc);
    if (qc->contains("source_quantize_config")) quantize_config = (*qc)["source_quantize_config"].dump(2) + "\n";
  }

  add_hf_safetensors_files(mp.plan, std::move(tensors), kDefaultMaxShardBytes);
  add_side_files(mp.plan, ck, replaced);
  // GPTQ's quantize_config.json would tell an old loader the tiles are plain GPTQ: folded into
  // config.json by the relayout, written back by --undo.
  mp.plan.extras.erase(std::remove_if(mp.plan.extras.begin(), mp.plan.extras.end(),
                                      [](const ExtraFile& e) { return e.name == "quantize_config.json"; }),
                       mp.plan.extras.end());
  if (quantize_config) mp.plan.extras.push_back({"quantize_config.json", *quantize_config, std::nullopt});
  if (!side_file(ck, "config.json")) mp.plan.extras.push_back({"config.json", replaced["config.json"], std::nullopt});
  mp.plan.notes["source_format"] = mp.source_scheme.describe();
  mp.plan.notes["linears"] = mp.linears;
  mp.plan.finalize();
  return mp;
}

bool is_marlin_config(const ojson* config) {
  if (!config || !config->is_object() || !config->contains("quantization_config")) return false;
  const ojson& qc = (*config)["quantization_config"];
  return qc.is_object() && qc.contains("quant_method") && qc["quant_method"] == kMarlinQuantMethod;
}

quant::Scheme marlin_source_scheme(const ojson& config, const std::string& label) {
  if (!is_marlin_config(&config)) fail(Errc::kInvalidArgument, label, "", "quantization_config.quant_method is not " + std::string(kMarlinQuantMethod));
  const ojson& qc = config["quantization_config"];
  if (!qc.contains("source_quantization_config") || !qc["source_quantization_config"].is_object())
    fail(Errc::kInvalidArgument, label, "", "quantization_config.source_quantization_config is missing");
  const ojson wrapped = {{"quantization_config", qc["source_quantization_config"]}};
  quant::Scheme s = quant::read_scheme(&wrapped, label + " (source_quantization_config)");
  if (s.method != quant::Method::kInt4)
    fail(Errc::kInvalidArgument, label, "", "source_quantization_config is not an INT4 format");
  return s;
}

MarlinTensorNames marlin_tensor_names(quant::Format f) {
  MarlinTensorNames n;
  if (f == quant::Format::kCompressedTensors) n.codes = "weight_packed", n.scales = "weight_scale", n.zeros = "weight_zero_point", n.g_idx = "weight_g_idx";
  else n.codes = "qweight", n.scales = "scales", n.zeros = "qzeros", n.g_idx = "g_idx";
  return n;
}

MarlinLinearGeometry marlin_linear_geometry(const ops::Int4Scheme& s, uint64_t n, uint64_t k) {
  MarlinLinearGeometry g;
  g.format = s.format;
  g.n = n;
  g.k = k;
  g.group_size = s.group_size <= 0 ? -1 : s.group_size;
  g.groups = g.group_size == -1 ? 1 : k / static_cast<uint64_t>(g.group_size);
  g.zero_offset = s.format == ops::Int4Format::kGptq ? s.gptq_zero_offset : 0;
  return g;
}

std::vector<uint8_t> marlin_source_scales(const MarlinLinearGeometry& g, const uint8_t* scales, size_t es) {
  std::vector<uint8_t> o(g.groups * g.n * es);
  ops::marlin_unpermute_scales(scales, es, g.n, g.k, g.group_size, 0, g.groups, o.data());
  return g.format == ops::Int4Format::kCompressedTensors ? transpose_elems(o, es, g.groups, g.n) : o;
}

std::vector<uint32_t> marlin_source_zeros(const MarlinLinearGeometry& g, const uint32_t* zero_points) {
  std::vector<uint8_t> z(g.groups * g.n);
  ops::marlin_unpack_zero_points(zero_points, g.groups, g.n, z.data());
  const MarlinSource f = marlin_source(g.format);  // ops::Int4Format overload
  std::vector<uint32_t> w(g.groups * g.n / 8, 0);
  for (uint64_t gr = 0; gr < g.groups; ++gr)
    for (uint64_t c = 0; c < g.n; ++c) {
      const uint32_t v = static_cast<uint32_t>(z[gr * g.n + c]);
      switch (f) {
        case MarlinSource::kGptq:
          w[gr * (g.n / 8) + c / 8] |= ((v - static_cast<uint32_t>(g.zero_offset)) & 15u) << (4 * (c % 8));
          break;
        case MarlinSource::kAwq: w[gr * (g.n / 8) + c / 8] |= v << (4 * ops::kAwqNibble[c % 8]); break;
        case MarlinSource::kCompressedTensors: w[(c / 8) * g.groups + gr] |= v << (4 * (c % 8)); break;
      }
    }
  return w;
}

std::vector<uint32_t> marlin_symmetric_gptq_zeros(const MarlinLinearGeometry& g) {
  return std::vector<uint32_t>(g.groups * g.n / 8, g.zero_offset == 0 ? 0x88888888u : 0x77777777u);
}

std::string marlin_source_g_idx(const int32_t* sorted, const int32_t* perm, uint64_t k, std::vector<int32_t>& out) {
  out.assign(k, -1);
  std::vector<bool> seen(k, false);
  for (uint64_t i = 0; i < k; ++i) {
    if (perm[i] < 0 || static_cast<uint64_t>(perm[i]) >= k || seen[static_cast<uint64_t>(perm[i])])
      return "is not a permutation of [0, " + std::to_string(k) + ")";
    seen[static_cast<uint64_t>(perm[i])] = true;
    out[static_cast<uint64_t>(perm[i])] = sorted[i];
  }
  return "";
}

std::vector<int32_t> marlin_trivial_g_idx(const MarlinLinearGeometry& g) {
  std::vector<int32_t> gi(g.k);
  for (uint64_t i = 0; i < g.k; ++i) gi[i] = static_cast<int32_t>(i / (g.k / g.groups));
  return gi;
}

std::vector<uint32_t> marlin_source_codes(const MarlinLinearGeometry& g, const uint32_t* marlin, const int32_t* perm) {
  const MarlinSource target = marlin_source(g.format);
  const uint64_t stride = target == MarlinSource::kGptq ? g.n : target == MarlinSource::kAwq ? g.n / 8 : g.k / 8;
  std::vector<uint32_t> dst(g.k / 8 * g.n);
  if (!perm) {
    ops::marlin_unpack(target, marlin, 2 * g.n, g.n, g.k, 0, g.k / 16, dst.data(), stride);
    return dst;
  }
  std::vector<uint32_t> sorted(g.k / 8 * g.n);
  ops::marlin_unpack(MarlinSource::kGptq, marlin, 2 * g.n, g.n, g.k, 0, g.k / 16, sorted.data(), g.n);
  ops::marlin_scatter_sorted_k(target, sorted.data(), g.n, g.n, g.k, perm, dst.data(), stride);
  return dst;
}

}  // namespace ckpt
