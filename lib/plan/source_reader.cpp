#include "plan/source_reader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>

#include "core/error.h"
#include "core/hash.h"
#include "plan/plan.h"

namespace ckpt {

namespace {

const uint64_t kPage = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));

// A read-only map of bytes [begin, end) of a file, unmapped when it goes out of scope, so that a
// chunk's pages stop counting as resident once the chunk is done. A refused map is an error, or
// with std::nothrow leaves data() null (the caller reads instead).
class Window {
 public:
  Window(const File& f, uint64_t begin, uint64_t end) : Window(f, begin, end, std::nothrow) {
    if (!data_ && len_) fail_errno(f.path(), "cannot map source bytes");
  }
  Window(const File& f, uint64_t begin, uint64_t end, std::nothrow_t) {
    uint64_t aligned = begin / kPage * kPage;
    len_ = end - aligned;
    if (len_ == 0) return;
    void* p = ::mmap(nullptr, len_, PROT_READ, MAP_SHARED | MAP_POPULATE, f.fd(), static_cast<off_t>(aligned));
    if (p == MAP_FAILED) return;
    base_ = static_cast<uint8_t*>(p);
    data_ = base_ + (begin - aligned);
  }
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;
  ~Window() {
    if (base_) ::munmap(base_, len_);
  }
  const uint8_t* data() const { return data_; }

 private:
  uint8_t* base_ = nullptr;
  const uint8_t* data_ = nullptr;
  uint64_t len_ = 0;
};

}  // namespace

SourceReader::SourceReader(const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    if (auto packed = split_packed_path(p)) {
      auto& c = containers_[packed->first];
      if (!c) c = PackedContainer::open(packed->first);
      const PackMember* m = c->index().find(packed->second);
      if (!m) fail(Errc::kNoCheckpoint, p, "", "no such file in the packed checkpoint");
      files_.emplace_back();
      packed_.push_back(std::make_unique<PackedMemberSource>(c, *m));
    } else {
      files_.push_back(File::open_read(p));
      packed_.push_back(nullptr);
    }
  }
}

// A packed source's File is unopened (fd -1): a caller that maps it (fp8_producers) gets a refusal
// and reads through gather() instead.
const File& SourceReader::file(int index) const { return files_.at(static_cast<size_t>(index)); }

void SourceReader::read(int index, void* out, size_t n, uint64_t offset) const {
  if (const auto& p = packed_.at(static_cast<size_t>(index))) p->read(offset, n, out);
  else files_[static_cast<size_t>(index)].pread_exact(out, n, offset);
}

uint64_t SourceReader::size(int index) const {
  if (const auto& p = packed_.at(static_cast<size_t>(index))) return p->size();
  return files_[static_cast<size_t>(index)].size();
}

uint64_t SourceReader::read_end(int index, uint64_t offset, uint64_t max_end) const {
  if (const auto& p = packed_.at(static_cast<size_t>(index))) return p->read_end(offset, max_end);
  return max_end;
}

namespace {

// Calls fn(element offset of the run's first element from element [0, 0, ...], run length) for
// the runs of consecutive innermost indices that elements [first, first + count) of a strided
// view form, in row-major order.
template <class Fn>
void for_each_run(const SourceView& v, const std::vector<int64_t>& strides, uint64_t first, uint64_t count, Fn fn) {
  const size_t nd = v.shape.size();
  std::vector<uint64_t> idx(nd);
  uint64_t rem = first;
  for (size_t d = nd; d-- > 0;) {
    idx[d] = rem % v.shape[d];
    rem /= v.shape[d];
  }
  const uint64_t inner = v.shape[nd - 1];
  uint64_t done = 0;
  while (done < count) {
    const uint64_t run = std::min<uint64_t>(inner - idx[nd - 1], count - done);
    int64_t off = 0;
    for (size_t d = 0; d < nd; ++d) off += static_cast<int64_t>(idx[d]) * strides[d];
    fn(off, run);
    done += run;
    idx[nd - 1] += run;
    for (size_t d = nd - 1; d > 0 && idx[d] == v.shape[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

}  // namespace

void SourceReader::gather(const SourceView& v, uint64_t first, uint64_t count, uint8_t* out) const {
  const unsigned bits = dtype_bits(v.dtype);
  if (count == 0) return;
  if (v.file == SourceView::kZeros) {
    std::memset(out, 0, count * bits / 8);
    return;
  }
  if (v.file == SourceView::kProduced) {
    if (v.is_contiguous()) return v.produced->read(*this, v.offset + first * bits / 8, count * bits / 8, out);
    if (bits % 8 != 0) fail(Errc::kUnsupported, "", "", "strided views of sub-byte dtypes are not supported");
    // An earlier pipeline step's bytes: each run made by its producer straight into `out`.
    const uint64_t es = bits / 8;
    const std::vector<int64_t> strides = v.effective_strides();
    const int64_t inner_stride = strides.back();
    for_each_run(v, strides, first, count, [&](int64_t off, uint64_t run) {
      const uint64_t at = v.offset + static_cast<uint64_t>(off) * es;
      if (inner_stride == 1) {
        v.produced->read(*this, at, run * es, out);
      } else {
        for (uint64_t i = 0; i < run; ++i) v.produced->read(*this, at + static_cast<uint64_t>(inner_stride) * i * es, es, out + i * es);
      }
      out += run * es;
    });
    return;
  }
  if (v.is_contiguous()) {
    read(v.file, out, count * bits / 8, v.offset + first * bits / 8);
    return;
  }
  const ByteSource* packed = packed_.at(static_cast<size_t>(v.file)).get();
  if (bits % 8 != 0)
    fail(Errc::kUnsupported, packed ? packed->name() : file(v.file).path(), "", "strided views of sub-byte dtypes are not supported");
  const uint64_t es = bits / 8;
  const std::vector<int64_t> strides = v.effective_strides();
  const size_t nd = v.shape.size();
  // The byte footprint of the rows touched: leading index from that of element `first` to that
  // of the last element, every other index over its full range. Strides are non-negative (torch
  // never writes negative strides and the torch reader refuses them), so these are the extremes.
  uint64_t first_leading = first, last_leading = first + count - 1;
  for (size_t d = nd; d-- > 1;) {
    first_leading /= v.shape[d];
    last_leading /= v.shape[d];
  }
  int64_t lo = static_cast<int64_t>(first_leading) * strides[0];
  int64_t hi = static_cast<int64_t>(last_leading) * strides[0];
  for (size_t d = 1; d < nd; ++d) hi += static_cast<int64_t>(v.shape[d] - 1) * strides[d];
  uint64_t byte_lo = v.offset + static_cast<uint64_t>(lo) * es;
  uint64_t byte_hi = v.offset + static_cast<uint64_t>(hi + 1) * es;
  // The footprint: read into a buffer (from a packed file: decoded) when it is not much larger
  // than the bytes gathered, else mapped. A map costs a page-table entry per page, filled and torn
  // down again per call: GGUF's Q/K row permutation (footprint = the bytes gathered) spent 8% of
  // `ckpt gguf --type f16`'s CPU in the copy from freshly mapped pages for 9% of the bytes (on the
  // PVM guest, where page tables are shadowed), against one pread's copy.
  std::optional<Window> w;
  thread_local std::vector<uint8_t> decoded;
  const uint8_t* footprint;
  if (packed || byte_hi - byte_lo <= 2 * count * es + kPage) {
    if (decoded.size() < byte_hi - byte_lo) decoded.resize(byte_hi - byte_lo);
    read(v.file, decoded.data(), byte_hi - byte_lo, byte_lo);
    footprint = decoded.data();
  } else {
    footprint = w.emplace(file(v.file), byte_lo, byte_hi).data();
  }
  const uint8_t* base = footprint - static_cast<uint64_t>(lo) * es;
  const int64_t inner_stride = strides[nd - 1];
  for_each_run(v, strides, first, count, [&](int64_t off, uint64_t run) {
    const uint8_t* src = base + static_cast<uint64_t>(off) * es;
    if (inner_stride == 1) {
      std::memcpy(out, src, run * es);
    } else {
      for (uint64_t i = 0; i < run; ++i)
        std::memcpy(out + i * es, src + static_cast<uint64_t>(inner_stride) * i * es, es);
    }
    out += run * es;
  });
}

void SourceElements::with(uint64_t first, uint64_t count, const std::function<void(const uint8_t*)>& fn) const {
  const uint64_t es = dtype_bits(view_.dtype) / 8;
  // Below 64 KiB a copy costs less than setting up and tearing down a mapping.
  if (view_.file >= 0 && !src_.packed(view_.file) && view_.is_contiguous() && count * es >= (64u << 10)) {
    const uint64_t begin = view_.offset + first * es;
    const Window w(src_.file(view_.file), begin, begin + count * es, std::nothrow);
    if (w.data()) {
      fn(w.data());
      return;
    }  // mapping refused (an odd file system): read instead
  }
  thread_local std::vector<uint8_t> buf;
  buf.resize(count * es);
  copy(first, count, buf.data());
  fn(buf.data());
}

}  // namespace ckpt
