// Every testdata PyTorch checkpoint converted (open -> plan_convert -> execute) and compared
// tensor by tensor with safetensors files torch wrote: edge cases against torch's contiguous()
// bytes (edge_ref.safetensors), the Llama .bin files against llama/model.safetensors. Also the
// alias rule, --key nesting, and the storage-semantics refusals on handcrafted files.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "checkpoint/checkpoint.h"
#include "commands/convert.h"
#include "core/error.h"
#include "formats/zip_reader.h"
#include "plan/executor.h"
#include "test_support.h"
#include "torch_files.h"

using namespace ckpt;
using test::PickleWriter;
using test::TensorSpec;
namespace fs = std::filesystem;

namespace {

struct Tensor {
  DType dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
  bool operator==(const Tensor&) const = default;
};

// Every tensor of a safetensors file, or of all the *.safetensors files of a directory.
std::map<std::string, Tensor> read_tensors(const std::string& path, Metadata* metadata = nullptr) {
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path))
      if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  } else {
    files.push_back(path);
  }
  std::map<std::string, Tensor> out;
  for (const auto& p : files) {
    File f = File::open_read(p);
    SafetensorsHeader h = read_safetensors_header(f);
    if (metadata && h.metadata) *metadata = *h.metadata;
    for (const auto& t : h.tensors) {
      Tensor x{t.dtype, t.shape, std::vector<uint8_t>(t.end - t.begin)};
      if (!x.bytes.empty()) f.pread_exact(x.bytes.data(), x.bytes.size(), h.data_start() + t.begin);
      EXPECT_TRUE(out.emplace(t.name, std::move(x)).second) << t.name;
    }
  }
  return out;
}

// As `ckpt convert` does: a directory's PyTorch files are read even when safetensors sit beside them.
std::string convert(const std::string& src, const test::ScratchDir& dir, OpenOptions oo = {},
                    uint64_t max_shard = 5'000'000'000ull, int threads = 2) {
  oo.prefer_torch = true;
  Checkpoint ck = open_checkpoint(src, oo);
  EXPECT_NE(ck.files.at(0).format, SourceFormat::kSafetensors) << src;
  Plan plan = plan_convert(ck, max_shard);
  ExecOptions eo;
  eo.threads = threads;
  std::string dst = dir / "out";
  execute(plan, dst, eo);
  return dst;
}

void expect_same_tensors(const std::map<std::string, Tensor>& got, const std::map<std::string, Tensor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name;
    EXPECT_EQ(it->second.dtype, t.dtype) << name;
    EXPECT_EQ(it->second.shape, t.shape) << name;
    EXPECT_TRUE(it->second.bytes == t.bytes) << name << ": bytes differ";
  }
}

Errc open_error(const std::string& path, const OpenOptions& oo = {}, std::string* message = nullptr) {
  try {
    open_checkpoint(path, oo);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::kCheckFailed;
}

std::string f32_bytes(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    float v = static_cast<float>(i);
    s.append(reinterpret_cast<const char*>(&v), 4);
  }
  return s;
}

}  // namespace

TEST(TorchConvert, EdgeZipAndLegacyMatchTorchContiguousBytes) {
  const auto ref = read_tensors(test::testdata("edge/edge_ref.safetensors"));
  for (const char* f : {"edge/edge.bin", "edge/edge_legacy.bin"}) {
    SCOPED_TRACE(f);
    test::ScratchDir a, b;
    OpenOptions keep;
    keep.keep_aliases = true;
    expect_same_tensors(read_tensors(convert(test::testdata(f), a, keep)), ref);
    // By default the tied pair is written once, and the dropped name recorded in the metadata.
    Metadata md;
    auto got = read_tensors(convert(test::testdata(f), b), &md);
    auto want = ref;
    want.erase("tied_b");
    expect_same_tensors(got, want);
    EXPECT_EQ(md, (Metadata{{"format", "pt"}, {"tied_b", "tied_a"}}));
  }
}

TEST(TorchConvert, LlamaBinSingleShardedAndTiedMatchSafetensors) {
  const auto llama = read_tensors(test::testdata("llama/model.safetensors"));
  for (const char* d : {"llama-bin", "llama-bin-sharded"}) {
    SCOPED_TRACE(d);
    test::ScratchDir s;
    std::string out = convert(test::testdata(d), s);
    expect_same_tensors(read_tensors(out), llama);
    EXPECT_TRUE(fs::exists(out + "/config.json"));
    EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
    EXPECT_FALSE(fs::exists(out + "/pytorch_model.bin.index.json"));
  }
  // llama-tied (tie_word_embeddings: true): lm_head.weight shares embed_tokens' storage and is
  // dropped, as transformers' save_pretrained did for llama-tied/model.safetensors.
  test::ScratchDir s;
  Metadata md;
  expect_same_tensors(read_tensors(convert(test::testdata("llama-tied"), s), &md),
                      read_tensors(test::testdata("llama-tied/model.safetensors")));
  EXPECT_EQ(md, (Metadata{{"format", "pt"}, {"lm_head.weight", "model.embed_tokens.weight"}}));
}

TEST(TorchConvert, ShardsAndThreadCountsGiveTheSameBytes) {
  test::ScratchDir a, b;
  std::string one = convert(test::testdata("llama-bin"), a, {}, 70'000, 1);
  std::string many = convert(test::testdata("llama-bin"), b, {}, 70'000, 4);
  EXPECT_TRUE(fs::exists(one + "/model.safetensors.index.json"));
  for (const auto& e : fs::directory_iterator(one)) {
    if (e.path().filename() == "ckpt-manifest.json") continue;
    EXPECT_EQ(test::read_file_bytes(e.path().string()), test::read_file_bytes(many + "/" + e.path().filename().string()))
        << e.path();
  }
  expect_same_tensors(read_tensors(one), read_tensors(test::testdata("llama/model.safetensors")));
}

TEST(TorchConvert, TiedOutputEmbeddingIsDroppedLikeTransformers) {
  // lm_head.weight and model.embed_tokens.weight: one storage, one view.
  std::string pkl = test::state_dict_pickle({{"lm_head.weight", "FloatStorage", "0", 8, 0, {2, 4}, {4, 1}, ""},
                                             {"model.embed_tokens.weight", "FloatStorage", "0", 8, 0, {2, 4}, {4, 1}, ""},
                                             {"model.norm.weight", "FloatStorage", "1", 4, 0, {4}, {1}, ""}});
  test::ScratchDir dir;
  test::write_file_bytes(dir / "m.bin", [&] {
    std::string z = test::build_torch_zip(pkl, {{"0", f32_bytes(8)}, {"1", f32_bytes(4)}});
    return std::vector<uint8_t>(z.begin(), z.end());
  }());
  Checkpoint ck = open_checkpoint(dir / "m.bin");
  ASSERT_EQ(ck.tensors.size(), 2u);
  EXPECT_EQ(ck.aliases, (std::vector<std::pair<std::string, std::string>>{{"lm_head.weight", "model.embed_tokens.weight"}}));
  EXPECT_NE(ck.find("model.embed_tokens.weight"), nullptr);
  OpenOptions keep;
  keep.keep_aliases = true;
  EXPECT_EQ(open_checkpoint(dir / "m.bin", keep).tensors.size(), 3u);
  // With tie_word_embeddings false a loader would not re-tie lm_head: it is kept as a copy.
  fs::create_directory(dir / "untied");
  fs::copy_file(dir / "m.bin", dir / "untied/pytorch_model.bin");
  test::write_file_bytes(dir / "untied/config.json", {'{', '"', 't', 'i', 'e', '_', 'w', 'o', 'r', 'd', '_', 'e', 'm', 'b', 'e', 'd', 'd',
                                                       'i', 'n', 'g', 's', '"', ':', 'f', 'a', 'l', 's', 'e', '}'});
  Checkpoint untied = open_checkpoint(dir / "untied");
  EXPECT_EQ(untied.tensors.size(), 3u);
  EXPECT_TRUE(untied.aliases.empty());
}

TEST(TorchConvert, NestedStateDictNeedsKeyAndGetsAHint) {
  PickleWriter w;
  w.proto().op('}').op('(').str("epoch").integer(3).str("state_dict").ordered_dict().op('(');
  w.str("w").tensor("FloatStorage", "0", 4, 0, {4}, {1}).op('u').op('u').op('.');
  test::ScratchDir dir;
  std::string z = test::build_torch_zip(w.bytes(), {{"0", f32_bytes(4)}});
  test::write_file_bytes(dir / "n.pt", std::vector<uint8_t>(z.begin(), z.end()));
  std::string msg;
  EXPECT_EQ(open_error(dir / "n.pt", {}, &msg), Errc::kTorchInvalid);
  EXPECT_NE(msg.find("try --key state_dict"), std::string::npos) << msg;
  OpenOptions oo;
  oo.state_dict_key = "state_dict";
  Checkpoint ck = open_checkpoint(dir / "n.pt", oo);
  ASSERT_EQ(ck.tensors.size(), 1u);
  EXPECT_EQ(ck.tensors[0].name, "w");
  oo.state_dict_key = "model";
  EXPECT_EQ(open_error(dir / "n.pt", oo, &msg), Errc::kTorchInvalid);
  EXPECT_NE(msg.find("no such top-level key"), std::string::npos) << msg;
}

TEST(TorchConvert, StorageSemanticsAreChecked) {
  test::ScratchDir dir;
  auto write = [&](const std::string& name, const std::vector<TensorSpec>& specs,
                   const std::vector<std::pair<std::string, std::string>>& storages) {
    std::string z = test::build_torch_zip(test::state_dict_pickle(specs), storages);
    test::write_file_bytes(dir / name, std::vector<uint8_t>(z.begin(), z.end()));
    return dir / name;
  };
  std::string msg;
  // A view reaching one element past its 6-element storage.
  EXPECT_EQ(open_error(write("out.bin", {{"v", "FloatStorage", "0", 6, 1, {2, 3}, {3, 1}, ""}}, {{"0", f32_bytes(6)}}), {}, &msg),
            Errc::kTorchInvalid);
  EXPECT_NE(msg.find("reaches outside its storage"), std::string::npos) << msg;
  EXPECT_EQ(open_error(write("neg.bin", {{"v", "FloatStorage", "0", 6, 5, {6}, {-1}, ""}}, {{"0", f32_bytes(6)}})),
            Errc::kUnsupported);
  // The storage record is missing, or shorter than the pickle declares.
  EXPECT_EQ(open_error(write("missing.bin", {{"v", "FloatStorage", "3", 6, 0, {6}, {1}, ""}}, {{"0", f32_bytes(6)}}), {}, &msg),
            Errc::kTorchInvalid);
  EXPECT_NE(msg.find("record 'archive/data/3'"), std::string::npos) << msg;
  EXPECT_EQ(open_error(write("short.bin", {{"v", "FloatStorage", "0", 6, 0, {6}, {1}, ""}}, {{"0", f32_bytes(5)}})),
            Errc::kTorchInvalid);
  // A disjoint and a partly overlapping view of one storage are each their own tensor.
  Checkpoint ck = open_checkpoint(write("views.bin", {{"a", "FloatStorage", "0", 8, 0, {4}, {1}, ""},
                                                      {"b", "FloatStorage", "0", 8, 4, {4}, {1}, ""},
                                                      {"c", "FloatStorage", "0", 8, 2, {2, 2}, {1, 2}, ""}},
                                                 {{"0", f32_bytes(8)}}));
  ASSERT_EQ(ck.tensors.size(), 3u);
  EXPECT_TRUE(ck.aliases.empty());
  EXPECT_FALSE(ck.find("c")->view.is_contiguous());
}

// A storage's CRC-32 is assembled from the blocks the verbatim copies read and, for the bytes no
// copy reads, by reading them: a flipped byte is caught wherever it lies, and storages copied more
// than once or in overlapping pieces (aliases kept, overlapping views) convert cleanly.
TEST(TorchConvert, StorageCrcsCoverCopiedAndUncopiedBytes) {
  constexpr int64_t kNumel = 800'000;  // 3.2 MB: several 1 MiB hash blocks per tensor
  auto whole = [](const char* name) { return TensorSpec{name, "FloatStorage", "0", kNumel, 0, {kNumel}, {1}, ""}; };
  struct Case {
    const char* what;
    std::vector<TensorSpec> tensors;
    bool keep_aliases = false;
  };
  const std::vector<Case> cases = {
      {"the whole storage, copied", {whole("w")}},
      {"aliases kept: the storage copied twice", {whole("w"), whole("tied")}, true},
      {"the first half only: the rest is read", {{"w", "FloatStorage", "0", kNumel, 0, {kNumel / 2}, {1}, ""}}},
      {"every other element: gathered, all read", {{"w", "FloatStorage", "0", kNumel, 0, {kNumel / 2}, {2}, ""}}},
      // a = bytes [0, 2'000'000), b = [400'004, 3'200'000): b's blocks start mid-way in a's, so
      // some are combined, some skipped and their bytes past a's end read.
      {"overlapping views", {{"a", "FloatStorage", "0", kNumel, 0, {500'000}, {1}, ""},
                             {"b", "FloatStorage", "0", kNumel, 100'001, {kNumel - 100'001}, {1}, ""}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string zip = test::build_torch_zip(test::state_dict_pickle(c.tensors), {{"0", f32_bytes(kNumel)}});
    MemorySource mem(reinterpret_cast<const uint8_t*>(zip.data()), zip.size(), "mem");
    const uint64_t storage = read_zip_directory(mem).find("archive/data/0")->data_offset;
    OpenOptions oo;
    oo.keep_aliases = c.keep_aliases;
    {
      test::ScratchDir dir;
      test::write_file_bytes(dir / "m.bin", std::vector<uint8_t>(zip.begin(), zip.end()));
      const auto out = read_tensors(convert(dir / "m.bin", dir, oo));
      EXPECT_EQ(out.size(), c.tensors.size());
    }
    // The first byte, one in b's skipped block past a's end, the last.
    for (uint64_t at : {uint64_t{0}, uint64_t{2'200'000}, uint64_t{kNumel * 4 - 1}}) {
      SCOPED_TRACE(at);
      test::ScratchDir dir;
      std::vector<uint8_t> bytes(zip.begin(), zip.end());
      bytes[storage + at] ^= 0x10;
      test::write_file_bytes(dir / "m.bin", bytes);
      try {
        convert(dir / "m.bin", dir, oo);
        ADD_FAILURE() << "a flipped byte was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Errc::kZipCrcMismatch);
        EXPECT_NE(std::string(e.what()).find("record 'archive/data/0' does not match its CRC-32"), std::string::npos) << e.what();
      }
      EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1) << "only the source is left";
    }
  }
}

TEST(TorchConvert, ContainerRefusals) {
  test::ScratchDir dir;
  auto put = [&](const std::string& name, const std::string& bytes) {
    test::write_file_bytes(dir / name, std::vector<uint8_t>(bytes.begin(), bytes.end()));
    return dir / name;
  };
  std::string pkl = test::state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {4}, {1}, ""}});
  EXPECT_EQ(open_error(put("script.pt", test::build_zip({{"m/data.pkl", pkl}, {"m/constants.pkl", pkl}, {"m/data/0", f32_bytes(4)}}))),
            Errc::kZipUnsupported);
  EXPECT_EQ(open_error(put("deflate.bin", test::build_zip({{"m/data.pkl", pkl}, {"m/data/0", f32_bytes(4), 8}}))),
            Errc::kZipUnsupported);
  // A storage record's CRC is checked while the plan runs, beside the copies: opening succeeds,
  // the conversion fails with the record named, and no output is left.
  std::string bad_crc = test::build_zip({{"m/data.pkl", pkl}, {"m/data/0", f32_bytes(4), 0, false, true}});
  Checkpoint crc_ck = open_checkpoint(put("crc.bin", bad_crc));
  ASSERT_EQ(crc_ck.checks.size(), 1u);
  try {
    execute(plan_convert(crc_ck, 5'000'000'000ull), dir / "crc_out", ExecOptions{});
    ADD_FAILURE() << "a bad CRC was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kZipCrcMismatch);
    EXPECT_NE(std::string(e.what()).find("m/data/0"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "crc_out"));
  // A corrupt pickle record is caught before it is parsed.
  std::string bad_pkl = test::build_zip({{"m/data.pkl", pkl, 0, false, true}, {"m/data/0", f32_bytes(4)}});
  EXPECT_EQ(open_error(put("crc_pkl.bin", bad_pkl)), Errc::kZipCrcMismatch);
  OpenOptions no_verify;
  no_verify.verify_crc = false;
  EXPECT_EQ(open_checkpoint(dir / "crc.bin", no_verify).tensors.size(), 1u);
  std::vector<uint8_t> legacy = test::read_file_bytes(test::testdata("edge/edge_legacy.bin"));
  legacy.resize(legacy.size() - 3);
  test::write_file_bytes(dir / "legacy_cut.bin", legacy);
  EXPECT_EQ(open_error(dir / "legacy_cut.bin"), Errc::kTorchInvalid);
  EXPECT_EQ(open_error(put("lfs.bin", "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")), Errc::kTorchInvalid);
  EXPECT_EQ(open_error(put("noise.bin", std::string(600, 'x'))), Errc::kTorchInvalid);
}
