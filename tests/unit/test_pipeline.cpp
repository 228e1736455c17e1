// ckpt run's composition (plan/pipeline.h): a later step reads an earlier step's bytes through
// SourceView::kProduced views, made on demand. Each test compares with the bytes the earlier step
// would have written, read back from a file: the produced path against the file path.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "checkpoint/checkpoint.h"
#include "commands/cast.h"
#include "commands/rechunk.h"
#include "commands/shard.h"
#include "core/error.h"
#include "ops/cast_op.h"
#include "plan/executor.h"
#include "plan/pipeline.h"
#include "test_support.h"

namespace ckpt {
namespace {

using test::testdata;

// Elements [first, first + count) of `v` through `reader`.
std::vector<uint8_t> gathered(const SourceReader& reader, const SourceView& v, uint64_t first, uint64_t count) {
  std::vector<uint8_t> out(count * dtype_bits(v.dtype) / 8);
  reader.gather(v, first, count, out.data());
  return out;
}

// A cast's output read through narrowed, column-sliced and transposed views, produced on demand,
// equals the same views over the cast's bytes written to a file.
TEST(Pipeline, ProducedViewsReadLikeTheWrittenBytes) {
  test::ScratchDir d;
  const Checkpoint ck = open_checkpoint(testdata("llama-f32"));
  const TensorRef* t = ck.find("model.layers.0.mlp.up_proj.weight");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->shape().size(), 2u);
  const uint64_t rows = t->shape()[0], cols = t->shape()[1];
  auto cast = std::make_shared<ViewProducer>(std::vector<SourceView>{t->view}, std::make_shared<ops::CastOp>(DType::F32, DType::BF16));
  std::vector<std::string> paths = source_paths(ck);
  std::vector<uint8_t> written(cast->nbytes());
  {
    SourceReader reader(paths);
    cast->produce(reader, 0, written.size(), written.data());
  }
  ASSERT_TRUE(std::any_of(written.begin(), written.end(), [](uint8_t b) { return b != 0; }));
  test::write_file_bytes(d / "cast.bin", written);
  paths.push_back(d / "cast.bin");
  SourceReader reader(paths);

  SourceView file;
  file.file = static_cast<int>(paths.size() - 1);
  file.dtype = DType::BF16;
  file.shape = {rows, cols};
  SourceView produced = file;
  produced.file = SourceView::kProduced;
  produced.produced = std::make_shared<ProducedTensor>(cast);

  auto transposed = [](SourceView v) {
    v.strides = {1, static_cast<int64_t>(v.shape[1])};
    std::swap(v.shape[0], v.shape[1]);
    return v;
  };
  const std::vector<std::pair<std::string, std::function<SourceView(const SourceView&)>>> views = {
      {"whole", [](const SourceView& v) { return v; }},
      {"rows", [&](const SourceView& v) { return v.narrow(0, 3, rows / 2); }},
      {"columns", [&](const SourceView& v) { return v.narrow(1, 5, cols / 2 - 3); }},
      {"transposed", transposed},
  };
  std::mt19937_64 rng(2080);
  for (const auto& [what, make] : views) {
    const SourceView a = make(file), b = make(produced);
    const uint64_t n = a.numel();
    EXPECT_EQ(gathered(reader, a, 0, n), gathered(reader, b, 0, n)) << what;
    for (int i = 0; i < 50; ++i) {
      const uint64_t first = rng() % n, count = 1 + rng() % (n - first);
      ASSERT_EQ(gathered(reader, a, first, count), gathered(reader, b, first, count)) << what << " " << first << "+" << count;
    }
  }
}

// The checkpoint a plan's output would open as: the tensors, order, config and side files of
// opening the written output, and the same bytes for every tensor.
TEST(Pipeline, CheckpointOfPlanOpensLikeTheWrittenOutput) {
  test::ScratchDir d;
  const Checkpoint ck = open_checkpoint(testdata("llama-bin"));
  CastOptions o;
  o.dtype = DType::F32;
  o.max_shard_bytes = 120'000;
  const Plan plan = plan_cast(ck, o);
  ASSERT_GT(plan.files.size(), 1u);
  ExecOptions eo;
  eo.threads = 2;
  execute(plan, d / "out", eo);
  const Checkpoint written = open_checkpoint(d / "out");
  const Checkpoint virt = checkpoint_of_plan(plan, ck, "cast output");

  ASSERT_EQ(virt.tensors.size(), written.tensors.size());
  const SourceReader from_source(source_paths(ck)), from_output(source_paths(written));
  for (size_t i = 0; i < virt.tensors.size(); ++i) {
    const TensorRef &v = virt.tensors[i], &w = written.tensors[i];
    ASSERT_EQ(v.name, w.name);
    EXPECT_EQ(v.dtype(), w.dtype()) << v.name;
    EXPECT_EQ(v.shape(), w.shape()) << v.name;
    EXPECT_EQ(gathered(from_source, v.view, 0, v.view.numel()), gathered(from_output, w.view, 0, w.view.numel())) << v.name;
  }
  ASSERT_EQ(virt.side_files.size(), written.side_files.size());
  for (size_t i = 0; i < virt.side_files.size(); ++i) {
    EXPECT_EQ(virt.side_files[i].name, written.side_files[i].name);
    EXPECT_EQ(side_file_text(virt.side_files[i]), side_file_text(written.side_files[i])) << written.side_files[i].name;
  }
  ASSERT_TRUE(virt.config && written.config);
  EXPECT_EQ(*virt.config, *written.config);
  EXPECT_EQ(virt.index_file.has_value(), written.index_file.has_value());
  EXPECT_EQ(virt.architecture(), written.architecture());
  // Its directory is the source's, whose side files it carries (gguf reads the tokenizer there).
  EXPECT_EQ(virt.dir, ck.dir);
}

// Nothing reads shard's rank directories: a step after shard is refused before any data moves,
// naming the step; a step's own refusal is named too.
TEST(Pipeline, RefusesAStepAfterShardNamingIt) {
  const Checkpoint ck = open_checkpoint(testdata("llama"));
  ShardOptions so;
  so.tp = 2;
  const PipelineStep shard{"shard", ojson::object(), [&](const Checkpoint& c) { return plan_shard(c, Recipe::for_checkpoint(c), so); }};
  const PipelineStep rechunk{"rechunk", ojson::object(), [](const Checkpoint& c) { return plan_rechunk(c, kDefaultMaxShardBytes); }};
  try {
    compose_pipeline(ck, {shard, rechunk});
    FAIL() << "a step after shard was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUnsupported);
    EXPECT_NE(e.rule().find("step 2 (rechunk)"), std::string::npos) << e.what();
  }
  const PipelineStep bad_cast{"cast", ojson::object(), [](const Checkpoint& c) {
                                CastOptions o;
                                o.only = {"no.such.tensor"};
                                return plan_cast(c, o);
                              }};
  try {
    compose_pipeline(ck, {rechunk, bad_cast});
    FAIL() << "a bad --only was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.rule().find("step 2 (cast): --only"), std::string::npos) << e.what();
  }
  const Plan one = compose_pipeline(ck, {rechunk, shard});
  EXPECT_EQ(one.command, "run");
  EXPECT_EQ(one.notes["pipeline"].size(), 2u);
  EXPECT_EQ(one.notes["pipeline"][1]["command"], "shard");
}

// A step whose output is one file (gguf) is read by no step: one after it is refused, naming it,
// before any step plans.
TEST(Pipeline, RefusesAStepAfterAFileBeforePlanning) {
  const Checkpoint ck = open_checkpoint(testdata("llama"));
  bool planned = false;
  PipelineStep file{"gguf", ojson::object(), [&](const Checkpoint& c) {
                      planned = true;
                      return plan_rechunk(c, kDefaultMaxShardBytes);
                    }};
  file.writes_file = true;
  const PipelineStep rechunk{"rechunk", ojson::object(), [&](const Checkpoint& c) {
                               planned = true;
                               return plan_rechunk(c, kDefaultMaxShardBytes);
                             }};
  try {
    compose_pipeline(ck, {rechunk, file, rechunk});
    FAIL() << "a step after a file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInvalidArgument);
    EXPECT_NE(e.rule().find("step 3 (rechunk): cannot follow step 2 (gguf)"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(planned);
  EXPECT_EQ(compose_pipeline(ck, {rechunk, file}).notes["pipeline"][1]["command"], "gguf");
  EXPECT_TRUE(planned);
}

}  // namespace
}  // namespace ckpt
