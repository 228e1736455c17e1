// Gathering views: every element of a strided view, read from any starting element, equals the
// element the strides point at — whether the rows it touches are read into a buffer (a footprint
// about the size of the bytes gathered: the whole views here) or mapped (a footprint much larger:
// the last element of the transposed view, whose row spans the file).
#include <gtest/gtest.h>

#include <numeric>

#include "plan/plan.h"
#include "plan/source_reader.h"
#include "test_support.h"

using namespace ckpt;

namespace {

struct Fixture {
  test::ScratchDir dir;
  std::string path = dir / "data.bin";
  std::vector<uint16_t> values;  // element i holds i
  Fixture() {
    values.resize(6 * 1024);
    std::iota(values.begin(), values.end(), 0);
    std::vector<uint8_t> bytes(values.size() * 2 + 6);  // 6 bytes of prefix: an odd base offset
    std::memcpy(bytes.data() + 6, values.data(), values.size() * 2);
    test::write_file_bytes(path, bytes);
  }
};

// The expected elements of a view, by plain index arithmetic.
std::vector<uint16_t> expected(const SourceView& v) {
  std::vector<uint16_t> out;
  std::vector<uint64_t> idx(v.shape.size(), 0);
  auto strides = v.effective_strides();
  for (uint64_t n = 0; n < v.numel(); ++n) {
    int64_t e = static_cast<int64_t>((v.offset - 6) / 2);
    for (size_t d = 0; d < idx.size(); ++d) e += static_cast<int64_t>(idx[d]) * strides[d];
    out.push_back(static_cast<uint16_t>(e));
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < v.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

TEST(SourceReader, GathersStridedViewsFromAnyStartingElement) {
  Fixture fx;
  SourceReader reader({fx.path});
  std::vector<SourceView> views;
  SourceView base{0, 6, DType::BF16, {64, 96}, {}};
  views.push_back(base);                                  // contiguous
  views.push_back({0, 6, DType::BF16, {96, 64}, {1, 96}});  // transposed
  views.push_back(base.narrow(0, 10, 20));                // row slice
  views.push_back(base.narrow(1, 24, 24));                // column slice (TP row-parallel)
  views.push_back({0, 6 + 2 * 7, DType::BF16, {5, 3, 4}, {200, 2, 50}});  // permuted, offset
  views.push_back({0, 6, DType::BF16, {3, 1, 5}, {5, 1000, 1}});          // size-1 dim, odd stride
  for (const auto& v : views) {
    auto want = expected(v);
    for (uint64_t first : {uint64_t{0}, uint64_t{1}, v.numel() / 3, v.numel() - 1}) {
      uint64_t count = v.numel() - first;
      std::vector<uint16_t> got(count);
      reader.gather(v, first, count, reinterpret_cast<uint8_t*>(got.data()));
      ASSERT_TRUE(std::equal(got.begin(), got.end(), want.begin() + static_cast<ptrdiff_t>(first)))
          << "shape " << shape_to_string(v.shape) << " from element " << first;
    }
  }
}

TEST(SourceReader, ViewProducerConcatenatesPiecesAndZeros) {
  Fixture fx;
  SourceReader reader({fx.path});
  SourceView base{0, 6, DType::BF16, {64, 96}, {}};
  SourceView zeros{SourceView::kZeros, 0, DType::BF16, {3, 96}, {}};
  ViewProducer p({base.narrow(0, 60, 4), zeros, base.narrow(0, 0, 2)});
  ASSERT_EQ(p.nbytes(), (4 + 3 + 2) * 96 * 2u);
  std::vector<uint16_t> got(9 * 96);
  p.produce(reader, 0, p.nbytes(), reinterpret_cast<uint8_t*>(got.data()));
  for (size_t i = 0; i < got.size(); ++i) {
    uint16_t want = i < 4 * 96 ? static_cast<uint16_t>(60 * 96 + i) : i < 7 * 96 ? 0 : static_cast<uint16_t>(i - 7 * 96);
    ASSERT_EQ(got[i], want) << i;
  }
  // A range inside the first piece is a verbatim copy; one touching the zeros is not.
  EXPECT_TRUE(p.verbatim(0, 4 * 96 * 2));
  EXPECT_FALSE(p.verbatim(0, 5 * 96 * 2));
}
