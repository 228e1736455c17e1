// The packed container end to end in the library: pack a real checkpoint directory, parse it
// strictly, read every file back byte for byte through PackedMemberSource (whole and at odd
// offsets), open it as a checkpoint whose tensors read through SourceReader equal the originals,
// the same bytes at any thread count, and the refusals: a flipped bit in each kind of frame, in
// the JSON and in the tables, truncation, an oversized declared length, trailing bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "checkpoint/checkpoint.h"
#include "commands/pack.h"
#include "commands/rechunk.h"
#include "core/error.h"
#include "formats/packed_source.h"
#include "plan/source_reader.h"
#include "validate/checkpoint_bytes.h"
#include "test_support.h"

namespace {

using namespace ckpt;
using test::read_file_bytes;
using test::ScratchDir;
using test::write_file_bytes;
namespace fs = std::filesystem;

std::string pack_dir(const std::string& src, const ScratchDir& tmp, const std::string& name, int threads = 2) {
  PackOptions o;
  o.threads = threads;
  pack_checkpoint(src, tmp / name, o);
  return tmp / name;
}

std::vector<std::string> files_of(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

TEST(PackContainer, EveryFileReadsBackByteForByte) {
  ScratchDir tmp;
  for (const char* d : {"llama-trained", "llama-tied", "llama-f32", "deepseek-v3", "llama-sharded", "edge"}) {
    const std::string src = test::testdata(d);
    const std::string packed = pack_dir(src, tmp, d);
    auto c = PackedContainer::open(packed + "/" + kPackFileName);
    ASSERT_EQ(c->index().members.size(), files_of(src).size()) << d;
    for (const auto& m : c->index().members) {
      auto want = read_file_bytes(src + "/" + m.name);
      PackedMemberSource s(c, m);
      ASSERT_EQ(s.size(), want.size()) << m.name;
      std::vector<uint8_t> got(want.size());
      s.read(0, got.size(), got.data());
      ASSERT_TRUE(got == want) << d << "/" << m.name;
      // Odd offsets and lengths across region and group boundaries.
      std::mt19937_64 rng(42);
      for (int k = 0; k < 50 && !want.empty(); ++k) {
        uint64_t off = rng() % want.size(), n = rng() % (want.size() - off + 1);
        std::vector<uint8_t> part(n);
        s.read(off, n, part.data());
        ASSERT_TRUE(std::equal(part.begin(), part.end(), want.begin() + static_cast<ptrdiff_t>(off))) << m.name << " @" << off;
      }
    }
  }
}

TEST(PackContainer, SameBytesAtAnyThreadCount) {
  ScratchDir tmp;
  const std::string src = test::testdata("llama-trained");
  auto one = read_file_bytes(pack_dir(src, tmp, "t1", 1) + "/" + kPackFileName);
  auto three = read_file_bytes(pack_dir(src, tmp, "t3", 3) + "/" + kPackFileName);
  EXPECT_TRUE(one == three);
  EXPECT_LT(one.size(), fs::file_size(src + "/model.safetensors"));  // bf16 weights shrink
}

TEST(PackContainer, OpensAsACheckpointWithTheSameTensors) {
  ScratchDir tmp;
  for (const char* d : {"llama-trained", "llama-sharded", "llama-tied"}) {
    const std::string src = test::testdata(d);
    Checkpoint plain = open_checkpoint(src);
    Checkpoint packed = open_checkpoint(pack_dir(src, tmp, d));
    ASSERT_TRUE(packed.packed.has_value());
    ASSERT_EQ(plain.tensors.size(), packed.tensors.size());
    ASSERT_EQ(plain.side_files.size(), packed.side_files.size());
    for (size_t i = 0; i < plain.side_files.size(); ++i) {
      EXPECT_EQ(plain.side_files[i].name, packed.side_files[i].name);
      EXPECT_EQ(side_file_text(plain.side_files[i]), side_file_text(packed.side_files[i]));
    }
    EXPECT_EQ(plain.config, packed.config);
    SourceReader a(source_paths(plain)), b(source_paths(packed));
    for (size_t i = 0; i < plain.tensors.size(); ++i) {
      const auto& ta = plain.tensors[i];
      const auto& tb = packed.tensors[i];
      ASSERT_EQ(ta.name, tb.name);
      ASSERT_EQ(ta.dtype(), tb.dtype());
      ASSERT_EQ(ta.shape(), tb.shape());
      std::vector<uint8_t> x(ta.nbytes()), y(tb.nbytes());
      a.gather(ta.view, 0, ta.view.numel(), x.data());
      b.gather(tb.view, 0, tb.view.numel(), y.data());
      ASSERT_TRUE(x == y) << ta.name;
      if (ta.shape().size() == 2 && ta.shape()[1] >= 4) {  // a strided column slice, as shard reads
        SourceView va = ta.view, vb = tb.view;
        for (SourceView* v : {&va, &vb}) {
          v->strides = SourceView::contiguous_strides(v->shape);
          v->shape[1] /= 2;
          v->offset += v->shape[1] * dtype_bits(v->dtype) / 8;
        }
        std::vector<uint8_t> sx(va.nbytes()), sy(vb.nbytes());
        a.gather(va, 0, va.numel(), sx.data());
        b.gather(vb, 0, vb.numel(), sy.data());
        ASSERT_TRUE(sx == sy) << ta.name << " (strided)";
      }
    }
  }
}

// validate::CheckpointBytes::get_parallel (the runtime's Model::load reads tensors through it): a
// packed file's range — the whole file, and each tensor (ranges that start and end inside frame
// groups) — decoded by several threads in pieces smaller than a group (decoded twice), of one
// group and of many equals the file's bytes; a file on disk is its map.
TEST(PackContainer, RangesDecodeInParallelPiecesToTheSameBytes) {
  ScratchDir tmp;
  const std::string src = test::testdata("llama-trained");
  const Checkpoint packed = open_checkpoint(pack_dir(src, tmp, "p"));
  const Checkpoint plain = open_checkpoint(src);
  const validate::CheckpointBytes pb(packed), ub(plain);
  for (size_t f = 0; f < packed.files.size(); ++f) {
    const auto want = read_file_bytes(src + "/" + fs::path(packed.files[f].path).filename().string());
    std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, want.size()}};
    for (const auto& t : packed.tensors)
      if (t.view.file == static_cast<int>(f)) ranges.emplace_back(t.view.offset, t.nbytes());
    ASSERT_GT(ranges.size(), 2u);
    for (const auto& [offset, n] : ranges) {
      for (uint64_t piece : {uint64_t{1000}, kPackGroupBytes, uint64_t{3} * kPackGroupBytes + 17, uint64_t{64} << 20}) {
        std::unique_ptr<uint8_t[]> buf;
        const uint8_t* got = pb.get_parallel(static_cast<int>(f), offset, n, buf, Workers{3}, piece);
        ASSERT_EQ(got, buf.get());
        ASSERT_TRUE(std::equal(want.begin() + offset, want.begin() + offset + n, got))
            << packed.files[f].path << " [" << offset << ", +" << n << ") in pieces of " << piece;
      }
      std::unique_ptr<uint8_t[]> none;
      const uint8_t* mapped = ub.get_parallel(static_cast<int>(f), offset, n, none, Workers{3});
      EXPECT_EQ(none, nullptr) << "a file on disk is read in place";
      EXPECT_TRUE(std::equal(want.begin() + offset, want.begin() + offset + n, mapped));
    }
    std::unique_ptr<uint8_t[]> buf;
    EXPECT_THROW(pb.get_parallel(static_cast<int>(f), want.size() - 1, 2, buf, Workers{3}), std::out_of_range);
    EXPECT_THROW(ub.get_parallel(static_cast<int>(f), want.size() + 1, 0, buf, Workers{3}), std::out_of_range);
  }
}

// --- corruption ------------------------------------------------------------------------------

struct Packed {
  ScratchDir tmp;
  std::string path;
  std::vector<uint8_t> bytes;
  PackIndex index;
  Packed() {
    path = pack_dir(test::testdata("llama-trained"), tmp, "p") + "/" + kPackFileName;
    bytes = read_file_bytes(path);
    index = read_pack_index(MemorySource(bytes.data(), bytes.size(), "p"));
  }
};

Errc error_of(const std::vector<uint8_t>& bytes) {
  try {
    MemorySource src(bytes.data(), bytes.size(), "corrupt.ckptpack");
    read_pack_index(src);
    return Errc::kCheckFailed;  // parsed: the caller decodes
  } catch (const Error& e) {
    return e.code();
  }
}

// Decodes every group of every member of a container file; the first error's text.
std::string decode_all(const std::string& path) {
  try {
    auto c = PackedContainer::open(path);
    for (const auto& m : c->index().members) {
      std::vector<uint8_t> buf(m.size);
      PackedMemberSource(c, m).read(0, m.size, buf.data());
    }
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(PackContainer, AFlippedBitInAnyFrameKindIsRefusedNamingFileTensorAndFrame) {
  Packed p;
  bool saw[2] = {false, false};
  for (const auto& m : p.index.members) {
    for (const auto& r : m.regions) {
      if (r.tensor.empty() || r.planes != 2) continue;
      for (unsigned plane = 0; plane < 2; ++plane) {
        const PackFrame& f = p.index.frames[p.index.groups[r.first_group].first_frame + plane];
        int kind = static_cast<int>(f.kind);
        if (saw[kind]) continue;
        saw[kind] = true;
        auto bad = p.bytes;
        bad[f.offset + f.size / 2] ^= 0x10;
        write_file_bytes(p.tmp / "bad.ckptpack", bad);
        std::string err = decode_all(p.tmp / "bad.ckptpack");
        EXPECT_NE(err.find(m.name), std::string::npos) << err;
        EXPECT_NE(err.find(r.tensor), std::string::npos) << err;
        EXPECT_NE(err.find("frame 0"), std::string::npos) << err;
        EXPECT_NE(err.find("pack_corrupt"), std::string::npos) << err;
      }
    }
  }
  EXPECT_TRUE(saw[0] && saw[1]) << "the trained model has both stored and zstd frames";
  // A flipped bit in a non-tensor region (the safetensors header's frame).
  const auto& head = p.index.frames[p.index.groups[p.index.find("model.safetensors")->regions[0].first_group].first_frame];
  auto bad = p.bytes;
  bad[head.offset + head.size - 1] ^= 0x01;
  write_file_bytes(p.tmp / "bad2.ckptpack", bad);
  std::string err = decode_all(p.tmp / "bad2.ckptpack");
  EXPECT_NE(err.find("model.safetensors"), std::string::npos) << err;
}

TEST(PackContainer, StructuralDamageIsRefusedBeforeAnyDecoding) {
  Packed p;
  // Truncation anywhere.
  for (size_t cut : {size_t{3}, size_t{23}, size_t{40}, p.index.data_start - 1, p.bytes.size() - 1}) {
    std::vector<uint8_t> t(p.bytes.begin(), p.bytes.begin() + static_cast<ptrdiff_t>(cut));
    EXPECT_EQ(error_of(t), Errc::kPackInvalid) << cut;
  }
  // Trailing bytes.
  auto extra = p.bytes;
  extra.push_back(0);
  EXPECT_EQ(error_of(extra), Errc::kPackInvalid);
  // An oversized declared JSON length, and one past the end.
  auto big = p.bytes;
  for (int i = 0; i < 8; ++i) big[16 + i] = 0xff;
  EXPECT_EQ(error_of(big), Errc::kPackInvalid);
  // An oversized frame size in the table (the first frame declares 2^31 bytes).
  auto frame = p.bytes;
  const uint64_t table = kPackPrefixBytes + (p.index.data_start - kPackPrefixBytes - 8 * (p.index.frames.size() + p.index.groups.size()));
  frame[table + 3] = 0x80;
  EXPECT_EQ(error_of(frame), Errc::kPackInvalid);
  // An unknown frame kind.
  auto kind = p.bytes;
  kind[table + 4] = 7;
  EXPECT_EQ(error_of(kind), Errc::kPackInvalid);
  // A group digest changed: the file digest no longer matches.
  auto dig = p.bytes;
  dig[table + 8 * p.index.frames.size()] ^= 1;
  EXPECT_EQ(error_of(dig), Errc::kPackInvalid);
  // Magic, version, reserved.
  auto magic = p.bytes;
  magic[0] = 'X';
  EXPECT_EQ(error_of(magic), Errc::kPackInvalid);
  auto version = p.bytes;
  version[8] = 2;
  EXPECT_EQ(error_of(version), Errc::kUnsupported);
  auto reserved = p.bytes;
  reserved[12] = 1;
  EXPECT_EQ(error_of(reserved), Errc::kPackInvalid);
  // A region length changed inside the JSON (same length text): regions no longer cover the file.
  std::string json(p.bytes.begin() + kPackPrefixBytes, p.bytes.begin() + static_cast<ptrdiff_t>(kPackPrefixBytes + table - kPackPrefixBytes));
  auto at = json.find("\"planes\":2");
  ASSERT_NE(at, std::string::npos);
  auto planes = p.bytes;
  planes[kPackPrefixBytes + at + 9] = '4';
  EXPECT_EQ(error_of(planes), Errc::kPackInvalid);
  // The untouched container parses.
  EXPECT_EQ(error_of(p.bytes), Errc::kCheckFailed);
}

}  // namespace
