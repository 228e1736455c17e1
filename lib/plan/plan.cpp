#include "plan/plan.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/hash.h"

namespace ckpt {

ViewProducer::ViewProducer(std::vector<SourceView> pieces, std::shared_ptr<const ElementOp> op)
    : pieces_(std::move(pieces)), op_(std::move(op)) {
  for (const auto& p : pieces_) {
    if (op_ && p.dtype != op_->in_dtype())
      throw std::logic_error("ViewProducer: piece dtype does not match the op's input");
    if (!pieces_.empty() && p.dtype != pieces_[0].dtype)
      throw std::logic_error("ViewProducer: pieces of different dtypes");
    piece_first_.push_back(numel_);
    numel_ += p.numel();
  }
}

uint64_t ViewProducer::nbytes() const {
  if (pieces_.empty()) return 0;
  DType out = op_ ? op_->out_dtype() : pieces_[0].dtype;
  return numel_ * dtype_bits(out) / 8;
}

std::optional<Producer::Verbatim> ViewProducer::verbatim(uint64_t begin, uint64_t n) const {
  if (op_ || pieces_.empty()) return std::nullopt;
  uint64_t byte = 0;
  for (const auto& p : pieces_) {
    uint64_t pb = p.nbytes();
    if (begin >= byte && begin + n <= byte + pb) {
      if (p.file == SourceView::kZeros || !p.is_contiguous()) return std::nullopt;
      if (p.file == SourceView::kProduced) return p.produced->verbatim(p.offset + (begin - byte), n);
      return Verbatim{p.file, p.offset + (begin - byte)};
    }
    byte += pb;
  }
  return std::nullopt;
}

void ViewProducer::produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const {
  const DType in = pieces_[0].dtype;
  const DType outd = op_ ? op_->out_dtype() : in;
  const unsigned out_bits = dtype_bits(outd), in_bits = dtype_bits(in);
  // Element range of this chunk (sub-byte dtypes are only ever copied, in whole bytes).
  const uint64_t first = begin * 8 / out_bits, count = n * 8 / out_bits;
  // Gathers elements [e, e + k) of the concatenation into w.
  auto gather = [&](uint64_t e, uint64_t k, uint8_t* w) {
    const uint64_t end = e + k;
    size_t i = std::upper_bound(piece_first_.begin(), piece_first_.end(), e) - piece_first_.begin() - 1;
    while (e < end) {
      const SourceView& p = pieces_[i];
      const uint64_t local = e - piece_first_[i];
      const uint64_t m = std::min(end - e, p.numel() - local);
      src.gather(p, local, m, w);
      w += m * in_bits / 8;
      e += m;
      ++i;
    }
  };
  if (!op_) return gather(first, count, out);
  // With an op, the input goes through a per-thread buffer in blocks small enough to stay in the
  // CPU cache between the read and the op (so the op runs at memory speed: ckpt cast,
  // tests/bench/bench_cast.sh); the buffer is reused and never zero-filled.
  constexpr uint64_t kOpBlockBytes = 256 << 10;
  const uint64_t block = std::max<uint64_t>(1, kOpBlockBytes * 8 / in_bits);
  // One buffer per nesting level: in a pipeline the gather below may run an earlier step's
  // producer (a cast of a cast) on this thread, which needs its own.
  thread_local std::vector<std::pair<std::unique_ptr<uint8_t[]>, uint64_t>> scratch;
  thread_local size_t depth = 0;
  if (scratch.size() <= depth) scratch.resize(depth + 1);
  const uint64_t need = std::min(block, count) * in_bits / 8;
  if (need > scratch[depth].second) {
    scratch[depth].first.reset(new uint8_t[need]);
    scratch[depth].second = need;
  }
  uint8_t* const buf = scratch[depth].first.get();
  struct Level {
    size_t& depth;
    explicit Level(size_t& d) : depth(d) { ++depth; }
    ~Level() { --depth; }
  } level(depth);
  for (uint64_t done = 0; done < count; done += block) {
    const uint64_t k = std::min(block, count - done);
    gather(first + done, k, buf);
    op_->apply(buf, out + done * out_bits / 8, k);
  }
}

ojson ViewProducer::describe() const {
  ojson d = ojson::object();
  d["op"] = op_ ? op_->name() : "copy";
  ojson ps = ojson::array();
  for (const auto& p : pieces_) ps.push_back(describe_view(p));
  d["pieces"] = ps;
  return d;
}

ojson describe_view(const SourceView& v) {
  ojson j = ojson::object();
  if (v.file == SourceView::kZeros) {
    j["zeros"] = v.numel();
    return j;
  }
  if (v.file == SourceView::kProduced) j["produced"] = v.produced->describe();
  else j["source"] = v.file;
  j["offset"] = v.offset;
  j["shape"] = v.shape;
  if (!v.is_contiguous()) j["strides"] = v.strides;
  return j;
}

void ProducedTensor::read(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const {
  std::call_once(prepared_, [&] { producer_->prepare(src); });
  producer_->produce(src, begin, n, out);
}

uint64_t OutputTensor::nbytes() const { return producer->nbytes(); }

std::shared_ptr<Producer> copy_of(const TensorRef& t) {
  return std::make_shared<ViewProducer>(std::vector<SourceView>{t.view});
}

void Plan::finalize() {
  std::set<std::string> names;
  for (auto& f : files) {
    std::vector<ContainerTensor> tensors;
    for (const auto& t : f.tensors) {
      // Names are unique per output directory (shard writes one directory per rank).
      if (!names.insert(f.name.substr(0, f.name.rfind('/') + 1) + '\0' + t.name).second)
        fail(Errc::kDuplicateKey, f.name, t.name, "the plan writes this tensor name twice");
      tensors.push_back({t.name, t.dtype, t.shape, t.producer->nbytes()});
    }
    ContainerLayout layout = f.container->lay_out(f.name, tensors);
    std::vector<OutputTensor> ordered;
    for (size_t i : layout.order) ordered.push_back(f.tensors[i]);
    f.tensors = std::move(ordered);
    f.head = std::move(layout.head);
    f.offsets = std::move(layout.offsets);
    f.size = layout.size;
  }
}

uint64_t Plan::tensor_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files)
    for (const auto& t : f.tensors) n += t.nbytes();
  return n;
}

std::vector<std::string> Plan::file_names() const {
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name);
  return names;
}

size_t Plan::tensor_count() const {
  size_t n = 0;
  for (const auto& f : files) n += f.tensors.size();
  return n;
}

ojson Plan::to_json() const {
  ojson j = ojson::object();
  j["command"] = command;
  j["sources"] = sources;
  j["tensor_count"] = tensor_count();
  j["tensor_bytes"] = tensor_bytes();
  ojson fs = ojson::array();
  for (const auto& f : files) {
    ojson jf = ojson::object();
    jf["name"] = f.name;
    jf["size"] = f.size;
    jf["format"] = std::string(f.container->format());
    jf["header_bytes"] = f.head.size();
    ojson ts = ojson::array();
    for (size_t i = 0; i < f.tensors.size(); ++i) {
      const auto& t = f.tensors[i];
      ojson jt = ojson::object();
      jt["name"] = t.name;
      jt["dtype"] = f.container->type_name({t.name, t.dtype, t.shape, t.nbytes()});
      jt["shape"] = t.shape;
      jt["bytes"] = t.nbytes();
      jt["offset"] = f.offsets.empty() ? 0 : f.offsets[i];
      jt["producer"] = t.producer->describe();
      ts.push_back(jt);
    }
    jf["tensors"] = ts;
    fs.push_back(jf);
  }
  j["files"] = fs;
  ojson ex = ojson::array();
  for (const auto& e : extras) {
    ojson je = ojson::object();
    je["name"] = e.name;
    if (e.copy_from) je["copy_from"] = *e.copy_from;
    else je["bytes"] = e.content ? e.content->size() : 0;
    ex.push_back(je);
  }
  j["extras"] = ex;
  if (!notes.empty()) j["notes"] = notes;
  return j;
}

}  // namespace ckpt
