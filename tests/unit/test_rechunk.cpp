// Rechunk through the whole library: outputs are byte-identical to what Python's safetensors
// wrote for the same tensors, tensor bytes are unchanged whatever the sharding, and the
// executor's guarantees hold (atomic output, determinism across thread counts).
#include <gtest/gtest.h>

#include <filesystem>

#include "commands/rechunk.h"
#include "core/error.h"
#include "core/hash.h"
#include "formats/hf_index.h"
#include "plan/executor.h"
#include "test_support.h"

using namespace ckpt;
using test::ScratchDir;
using test::testdata;
namespace fs = std::filesystem;

namespace {

ExecReport rechunk(const std::string& src, const std::string& dst, uint64_t max, int threads = 2,
                   uint64_t budget = 256ull << 20) {
  Checkpoint ck = open_checkpoint(src);
  Plan plan = plan_rechunk(ck, max);
  ExecOptions o;
  o.threads = threads;
  o.memory_budget = budget;
  o.protected_paths = {src};
  return execute(plan, dst, o);
}

std::vector<uint8_t> tensor_bytes(const Checkpoint& ck, const TensorRef& t) {
  std::vector<uint8_t> b(t.nbytes());
  File f = File::open_read(ck.files[t.view.file].path);
  if (!b.empty()) f.pread_exact(b.data(), b.size(), t.view.offset);
  return b;
}

// A synthetic checkpoint with tensors large enough to span several executor chunks.
std::string make_large_checkpoint(const ScratchDir& dir) {
  std::string path = dir / "big.safetensors";
  std::vector<uint8_t> data;
  std::string header = R"({"a":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]},)"
                       R"("b":{"dtype":"BF16","shape":[3,1000001],"data_offsets":[4000000,10000006]}})";
  data.resize(10000006);
  uint32_t x = 12345;
  for (auto& v : data) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(x >> 24);
  }
  test::write_raw_safetensors(path, header, data);
  return path;
}

}  // namespace

TEST(Rechunk, SingleFileOutputEqualsWhatPythonSafetensorsWrote) {
  for (const char* rel : {"llama/model.safetensors", "edge/edge_ref.safetensors", "numerics/fp8.safetensors",
                          "qwen2/model.safetensors", "mixtral/model.safetensors"}) {
    ScratchDir d;
    rechunk(testdata(rel), d / "out", kDefaultMaxShardBytes);
    EXPECT_EQ(test::read_file_bytes(d / "out/model.safetensors"), test::read_file_bytes(testdata(rel))) << rel;
  }
}

TEST(Rechunk, ShardedSourceToOneFileAndBack) {
  ScratchDir d;
  rechunk(testdata("llama-sharded"), d / "one", kDefaultMaxShardBytes);
  EXPECT_EQ(test::read_file_bytes(d / "one/model.safetensors"), test::read_file_bytes(testdata("llama/model.safetensors")));
  for (const char* side : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"})
    EXPECT_EQ(test::read_file_bytes(d / ("one/" + std::string(side))), test::read_file_bytes(testdata("llama/") + side)) << side;
  EXPECT_FALSE(fs::exists(d / "one/model.safetensors.index.json"));

  rechunk(d / "one", d / "many", 50'000);
  Checkpoint src = open_checkpoint(testdata("llama"));
  Checkpoint out = open_checkpoint(d / "many");  // also cross-checks the index against the shards
  ASSERT_TRUE(out.index_file);
  EXPECT_GT(out.files.size(), 3u);
  ASSERT_EQ(out.tensors.size(), src.tensors.size());
  for (const auto& t : src.tensors) {
    const TensorRef* o = out.find(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(o->dtype(), t.dtype());
    EXPECT_EQ(o->shape(), t.shape());
    EXPECT_EQ(tensor_bytes(out, *o), tensor_bytes(src, t)) << t.name;
  }
  for (const auto& f : out.files) {
    // At most the limit, unless one tensor alone is larger.
    uint64_t bytes = 0;
    size_t n = 0;
    for (const auto& t : out.tensors)
      if (out.files[t.view.file].path == f.path) bytes += t.nbytes(), ++n;
    EXPECT_TRUE(bytes <= 50'000 || n == 1) << f.path;
  }
  HfIndex index = read_hf_index(d / "many/model.safetensors.index.json");
  EXPECT_EQ(index.metadata["total_size"].get<uint64_t>(), src.total_bytes());
  EXPECT_EQ(index.metadata["total_parameters"].get<uint64_t>(), 102720u);
}

TEST(Rechunk, SameBytesAtAnyThreadCountAndChunkSize) {
  ScratchDir d;
  std::string src = make_large_checkpoint(d);
  rechunk(src, d / "t1", kDefaultMaxShardBytes, 1);
  rechunk(src, d / "t7", kDefaultMaxShardBytes, 7, 1);  // smallest chunks: 1 MiB
  auto one = test::read_file_bytes(d / "t1/model.safetensors");
  EXPECT_EQ(one, test::read_file_bytes(d / "t7/model.safetensors"));
  EXPECT_EQ(test::read_file_bytes(d / "t1/ckpt-manifest.json").size(), test::read_file_bytes(d / "t7/ckpt-manifest.json").size());
}

TEST(Rechunk, ManifestDigestsMatchTheReferenceDigest) {
  ScratchDir d;
  std::string src = make_large_checkpoint(d);
  ExecReport r = rechunk(src, d / "out", kDefaultMaxShardBytes, 2, 1);
  Checkpoint out = open_checkpoint(d / "out");
  const auto& tensors = r.manifest["files"]["model.safetensors"]["tensors"];
  for (const auto& t : out.tensors) {
    auto bytes = tensor_bytes(out, t);
    EXPECT_EQ(tensors[t.name].get<std::string>(), digest_hex(tensor_digest(bytes.data(), bytes.size()))) << t.name;
  }
}

TEST(Rechunk, DestinationRules) {
  ScratchDir d;
  std::string src = make_large_checkpoint(d);
  fs::create_directory(d / "src");
  fs::copy_file(src, d / "src/model.safetensors");
  auto code_of = [&](const std::string& from, const std::string& to, bool force) {
    try {
      Checkpoint ck = open_checkpoint(from);
      ExecOptions o;
      o.force = force;
      o.protected_paths = {from};
      execute(plan_rechunk(ck, kDefaultMaxShardBytes), to, o);
    } catch (const Error& e) {
      return e.code();
    }
    return Errc::kCheckFailed;  // "succeeded"
  };
  EXPECT_EQ(code_of(d / "src", d / "src", false), Errc::kDestinationInSource);
  EXPECT_EQ(code_of(d / "src", d / "src/inner", false), Errc::kDestinationInSource);
  EXPECT_EQ(code_of(d / "src", d.path(), true), Errc::kDestinationInSource);  // --force would delete the source
  EXPECT_EQ(code_of(d / "src", d / "out", false), Errc::kCheckFailed);
  EXPECT_EQ(code_of(d / "src", d / "out", false), Errc::kDestinationExists);
  EXPECT_EQ(code_of(d / "src", d / "out", true), Errc::kCheckFailed);
  // Nothing but the outputs: no temporary directory left beside them.
  for (const auto& e : fs::directory_iterator(d.path()))
    EXPECT_EQ(e.path().filename().string().find(".ckpt-tmp"), std::string::npos) << e.path();
}

namespace {
// A producer that fails half-way, standing in for a read error in the middle of a run.
class FailingProducer : public Producer {
 public:
  uint64_t nbytes() const override { return 4u << 20; }
  void produce(const SourceReader&, uint64_t begin, uint64_t n, uint8_t* out) const override {
    if (begin >= (2u << 20)) fail(Errc::kIo, "source.bin", "t", "simulated read failure");
    std::fill(out, out + n, 1);
  }
  ojson describe() const override { return "failing"; }
};
}  // namespace

TEST(Executor, AFailedRunLeavesNothingBehind) {
  ScratchDir d;
  Plan plan;
  plan.command = "test";
  OutputFile f;
  f.name = "model.safetensors";
  f.tensors.push_back({"t", DType::U8, {4u << 20}, std::make_shared<FailingProducer>()});
  plan.files.push_back(f);
  plan.finalize();
  ExecOptions o;
  o.memory_budget = 1;
  EXPECT_THROW(execute(plan, d / "out", o), Error);
  EXPECT_TRUE(fs::is_empty(d.path()));
}
