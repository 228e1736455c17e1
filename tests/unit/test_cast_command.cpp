// ckpt cast's planner end to end through the executor: a mixed checkpoint (torch's edge-case
// state dict, as safetensors and as a .bin) changes exactly its float tensors, each to the
// reference's bytes; --keep / --only; config.json's dtype keys; refusals.
#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "commands/cast.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "ops/cast.h"
#include "plan/executor.h"
#include "tensor_bytes.h"
#include "test_support.h"

namespace {

using namespace ckpt;
using test::load_tensor_bytes;
using test::ScratchDir;

std::string run_cast(const std::string& src, const std::string& dst, CastOptions o, int threads = 0) {
  Checkpoint ck = open_checkpoint(src);
  Plan plan = plan_cast(ck, o);
  ExecOptions e;
  e.threads = threads;
  execute(plan, dst, e);
  return dst + "/model.safetensors";
}

std::vector<std::string> tensor_names(const std::string& file) {
  File f = File::open_read(file);
  std::vector<std::string> names;
  for (const auto& t : read_safetensors_header(f).tensors) names.push_back(t.name);
  return names;
}

// Every tensor of `out` against `ref` (torch's contiguous bytes): float tensors selected by `cast`
// become `to` with the reference's bytes, every other tensor is unchanged. Returns how many
// tensors changed dtype.
size_t expect_exactly_floats_cast(const std::string& ref, const std::string& out, DType to,
                                bool (*cast)(const std::string&)) {
  size_t changed = 0, unchanged = 0;
  for (const auto& name : tensor_names(out)) {
    auto src = load_tensor_bytes(ref, name);
    auto got = load_tensor_bytes(out, name);
    EXPECT_EQ(got.shape, src.shape) << name;
    if (ops::is_cast_source(src.dtype) && cast(name)) {
      const uint64_t n = src.bytes.size() / (dtype_bits(src.dtype) / 8);
      std::vector<uint8_t> want(n * (dtype_bits(to) / 8));
      ops::cast_reference(src.dtype, to, src.bytes.data(), want.data(), n);
      EXPECT_EQ(got.dtype, to) << name;
      EXPECT_TRUE(got.bytes == want) << name;
      changed += src.dtype != to;
    } else {
      EXPECT_EQ(got.dtype, src.dtype) << name;
      EXPECT_TRUE(got.bytes == src.bytes) << name;
      ++unchanged;
    }
  }
  EXPECT_GT(unchanged, 5u);  // the int, bool and fp8 tensors at least
  return changed;
}

bool all(const std::string&) { return true; }

TEST(CastCommand, MixedSafetensorsChangesExactlyTheFloatTensors) {
  ScratchDir dir;
  const std::string ref = test::testdata("edge/edge_ref.safetensors");
  for (DType to : {DType::F16, DType::BF16, DType::F32}) {
    CastOptions o;
    o.dtype = to;
    const std::string out = run_cast(ref, dir / std::string(dtype_name(to)), o);
    EXPECT_GE(expect_exactly_floats_cast(ref, out, to, all), to == DType::F32 ? 4u : 10u);
  }
}

TEST(CastCommand, StraightFromTorchBin) {
  ScratchDir dir;
  CastOptions o;
  o.dtype = DType::F16;
  // edge.bin holds strided views, offsets into shared storages and fp8/int/bool tensors; its
  // contiguous bytes are edge_ref.safetensors.
  const std::string out = run_cast(test::testdata("edge/edge.bin"), dir / "bin", o);
  EXPECT_GE(expect_exactly_floats_cast(test::testdata("edge/edge_ref.safetensors"), out, DType::F16, all), 10u);
  const std::string legacy = run_cast(test::testdata("edge/edge_legacy.bin"), dir / "legacy", o);
  expect_exactly_floats_cast(test::testdata("edge/edge_ref.safetensors"), legacy, DType::F16, all);
}

TEST(CastCommand, KeepAndOnly) {
  ScratchDir dir;
  const std::string ref = test::testdata("edge/edge_ref.safetensors");
  CastOptions keep;
  keep.dtype = DType::F16;
  keep.keep = {"*_a", "big"};
  expect_exactly_floats_cast(ref, run_cast(ref, dir / "keep", keep), DType::F16,
                             [](const std::string& n) { return n != "big" && n != "shared_a" && n != "tied_a"; });
  CastOptions only;
  only.dtype = DType::BF16;
  only.only = {"f*", "param"};
  only.keep = {"f16"};  // keep wins over only
  EXPECT_EQ(expect_exactly_floats_cast(ref, run_cast(ref, dir / "only", only), DType::BF16,
                                       [](const std::string& n) { return n == "f64" || n == "param"; }),
            2u);
}

TEST(CastCommand, SameBytesAtAnyThreadCount) {
  ScratchDir dir;
  CastOptions o;
  o.dtype = DType::F16;
  const auto one = test::read_file_bytes(run_cast(test::testdata("llama"), dir / "t1", o, 1));
  const auto two = test::read_file_bytes(run_cast(test::testdata("llama"), dir / "t2", o, 2));
  EXPECT_TRUE(one == two);
}

// testdata/llama is exactly llama-f32 cast by torch: casting it ourselves gives the file
// transformers wrote, byte for byte.
TEST(CastCommand, F32ToBF16ReproducesTorchsFile) {
  ScratchDir dir;
  CastOptions o;
  o.dtype = DType::BF16;
  EXPECT_TRUE(test::read_file_bytes(run_cast(test::testdata("llama-f32"), dir / "o", o)) ==
              test::read_file_bytes(test::testdata("llama/model.safetensors")));
}

TEST(CastCommand, Refusals) {
  Checkpoint ck = open_checkpoint(test::testdata("llama"));
  CastOptions o;
  o.dtype = DType::F16;
  o.keep = {"*no_such_tensor*"};
  try {
    plan_cast(ck, o);
    FAIL() << "an unmatched --keep must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("--keep '*no_such_tensor*' matches no tensor"), std::string::npos) << e.what();
  }
  o.keep.clear();
  o.dtype = DType::F64;
  EXPECT_THROW(plan_cast(ck, o), Error);
  o.dtype = DType::I32;
  EXPECT_THROW(plan_cast(ck, o), Error);
}

TEST(CastCommand, ConfigDtypeKeys) {
  // transformers 5 writes `dtype` (sorted keys): it is updated and `torch_dtype` joins in order.
  ojson t5 = ojson::parse(R"({"architectures":["X"],"dtype":"bfloat16","model_type":"llama","vocab_size":3})");
  EXPECT_EQ(config_with_dtype(t5, "float16"),
            "{\n  \"architectures\": [\n    \"X\"\n  ],\n  \"dtype\": \"float16\",\n  \"model_type\": \"llama\",\n"
            "  \"torch_dtype\": \"float16\",\n  \"vocab_size\": 3\n}\n");
  // transformers 4 writes `torch_dtype` only: no `dtype` is added. Sub-configs follow.
  ojson t4 = ojson::parse(R"({"torch_dtype":"float32","text_config":{"torch_dtype":"float32","x":1},"a":{"b":2}})");
  ojson out = ojson::parse(config_with_dtype(t4, "bfloat16"));
  EXPECT_EQ(out["torch_dtype"], "bfloat16");
  EXPECT_FALSE(out.contains("dtype"));
  EXPECT_EQ(out["text_config"]["torch_dtype"], "bfloat16");
  EXPECT_EQ(out["a"], ojson::parse(R"({"b":2})"));
  EXPECT_EQ(out.begin().key(), "torch_dtype");  // unsorted file: key order kept
}

}  // namespace
