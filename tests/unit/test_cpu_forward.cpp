// The CPU reference forward: transformers' logits and hidden states for every tiny architecture
// (testdata/*/reference_logits.safetensors), the KV cache (prefill + decode = one pass), batch
// independence, and tensor/pipeline/expert-parallel outputs of `ckpt shard` computing the
// unsharded model's logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/safetensors_small.h"
#include "model/compare.h"
#include "model/cpu_forward.h"
#include "model/token_ids.h"
#include "ops/float_bits.h"
#include "test_support.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::model;
using ckpt::test::testdata;

namespace {

const char* kModels[] = {"llama", "llama-tied", "mistral", "qwen2", "qwen3", "phi3", "mixtral", "qwen3-moe"};

std::vector<double> run(const Model& m, const TokenIds& ids) {
  CpuForward f(m, ids.sequences, ids.length);
  return f.forward(ids.ids, ids.length);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

double range_of(const std::vector<double>& v) {
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return *hi - *lo;
}

std::vector<double> f32_values(const SmallTensor& t) {
  EXPECT_EQ(t.dtype, DType::F32) << t.name;
  std::vector<double> v(t.bytes.size() / 4);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, t.bytes.data() + 4 * i, 4);
    v[i] = ops::f32_from_bits(u);
  }
  return v;
}

// Records every layer's "output" activation.
struct HiddenRecorder : ActivationObserver {
  std::vector<std::vector<double>> layers;
  void on(uint64_t layer, const std::string& name, const double* data, uint64_t tokens, uint64_t width) override {
    if (name != "output") return;
    layers.resize(std::max<size_t>(layers.size(), layer + 1));
    layers[layer].assign(data, data + tokens * width);
  }
};

}  // namespace

// transformers computes the reference in float32 from the same (bf16-valued) weights; the
// forward here accumulates in double. The tolerance: max |delta logit| <= 1e-5 of the reference
// logits' range, and the same for every layer's hidden state against its own range.
constexpr double kReferenceTolerance = 1e-5;  // measured: 1.7e-7 .. 4.5e-7 (float32 noise)

class TransformersReference : public ::testing::TestWithParam<std::string> {};

TEST_P(TransformersReference, LogitsAndHiddenStatesMatch) {
  const std::string dir = GetParam();
  const std::string ref_path = testdata(dir + "/reference_logits.safetensors");
  if (!std::filesystem::exists(ref_path))
    GTEST_SKIP() << ref_path << " is not generated yet (testdata/generate.py on the GPU machine writes it)";
  std::vector<SmallTensor> ref = read_small_safetensors(ref_path);
  const SmallTensor *ids_t = nullptr, *logits_t = nullptr, *hidden_t = nullptr;
  for (const auto& t : ref) {
    if (t.name == "input_ids") ids_t = &t;
    if (t.name == "logits") logits_t = &t;
    if (t.name == "hidden_states") hidden_t = &t;
  }
  ASSERT_TRUE(ids_t && logits_t);
  TokenIds ids = read_token_ids(ref_path);
  auto model = Model::open(testdata(dir));
  CpuForward f(*model, ids.sequences, ids.length);
  HiddenRecorder rec;
  std::vector<double> got = f.forward(ids.ids, ids.length, &rec);
  std::vector<double> want = f32_values(*logits_t);
  ASSERT_EQ(got.size(), want.size());
  const double tol = kReferenceTolerance * range_of(want);
  const double err = max_abs_diff(got, want);
  char rel[32];
  std::snprintf(rel, sizeof rel, "%.3g", err / range_of(want));
  RecordProperty("max_abs_logit_error_over_range", rel);
  EXPECT_LE(err, tol) << dir << ": logits differ from transformers'";
  if (hidden_t) {
    std::vector<double> hs = f32_values(*hidden_t);
    const uint64_t per = got.size() / model->config().vocab * model->config().hidden;
    ASSERT_EQ(hs.size(), (model->config().layers + 1) * per);
    // [i] for i < L is the input of layer i (after layer i-1); the last is after the final norm.
    for (uint64_t i = 0; i + 1 < model->config().layers; ++i) {
      std::vector<double> want_i(hs.begin() + (i + 1) * per, hs.begin() + (i + 2) * per);
      EXPECT_LE(max_abs_diff(rec.layers[i], want_i), kReferenceTolerance * range_of(want_i))
          << dir << ": hidden state after layer " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Testdata, TransformersReference,
                         ::testing::Values("llama", "llama-tied", "mistral", "qwen2", "qwen3", "phi3", "mixtral",
                                           "qwen3-moe", "llama-trained"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

TEST(CpuForward, EveryArchitectureRunsFiniteAndDeterministic) {
  for (const char* dir : kModels) {
    auto model = Model::open(testdata(dir));
    TokenIds ids = seeded_token_ids(model->config().vocab, 2, 7, 1);
    std::vector<double> a = run(*model, ids), b = run(*model, ids);
    ASSERT_EQ(a.size(), 2u * 7 * model->config().vocab) << dir;
    for (double x : a) ASSERT_TRUE(std::isfinite(x)) << dir;
    EXPECT_EQ(a, b) << dir;
    EXPECT_GT(range_of(a), 0.0) << dir;
  }
}

TEST(CpuForward, PrefillThenDecodeEqualsOnePass) {
  for (const char* dir : kModels) {
    auto model = Model::open(testdata(dir));
    const uint64_t V = model->config().vocab;
    TokenIds ids = seeded_token_ids(V, 2, 6, 2);
    std::vector<double> whole = run(*model, ids);
    CpuForward f(*model, 2, 6);
    std::vector<int64_t> prefix;
    for (uint64_t s = 0; s < 2; ++s) prefix.insert(prefix.end(), ids.row(s), ids.row(s) + 4);
    std::vector<double> first = f.forward(prefix, 4);
    for (uint64_t s = 0; s < 2; ++s)
      for (uint64_t t = 0; t < 4; ++t)
        for (uint64_t v = 0; v < V; ++v)
          ASSERT_NEAR(first[(s * 4 + t) * V + v], whole[(s * 6 + t) * V + v], 1e-12) << dir;
    for (uint64_t t = 4; t < 6; ++t) {
      std::vector<double> step = f.forward({ids.row(0)[t], ids.row(1)[t]}, 1);
      for (uint64_t s = 0; s < 2; ++s)
        for (uint64_t v = 0; v < V; ++v) ASSERT_NEAR(step[s * V + v], whole[(s * 6 + t) * V + v], 1e-12) << dir;
    }
  }
}

TEST(CpuForward, SequencesOfABatchAreIndependent) {
  auto model = Model::open(testdata("qwen3-moe"));
  const uint64_t V = model->config().vocab;
  TokenIds both = seeded_token_ids(V, 2, 5, 3);
  std::vector<double> together = run(*model, both);
  for (uint64_t s = 0; s < 2; ++s) {
    TokenIds one{std::vector<int64_t>(both.row(s), both.row(s) + 5), 1, 5};
    std::vector<double> alone = run(*model, one);
    for (size_t i = 0; i < alone.size(); ++i) ASSERT_DOUBLE_EQ(alone[i], together[s * 5 * V + i]);
  }
}

TEST(CpuForward, IdOutsideTheVocabularyIsAnError) {
  auto model = Model::open(testdata("llama"));
  CpuForward f(*model, 1, 2);
  try {
    f.forward({5, 256}, 2);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("256"), std::string::npos);
  }
}

TEST(CpuForward, UnknownTensorIsRefused) {
  // A checkpoint with a tensor the model does not use is refused, naming the tensor.
  test::ScratchDir dir;
  for (const auto& e : std::filesystem::directory_iterator(testdata("llama")))
    std::filesystem::copy(e.path(), dir / e.path().filename().string());
  std::vector<SmallTensor> all = read_small_safetensors(dir / "model.safetensors");
  all.push_back({"model.layers.0.mlp.extra.weight", DType::BF16, {2}, {0, 0, 0, 0}});
  std::filesystem::remove(dir / "model.safetensors");
  write_small_safetensors(dir / "model.safetensors", all);
  try {
    Model::open(dir.path());
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.tensor(), "model.layers.0.mlp.extra.weight") << e.what();
  }
}

// ckpt shard outputs: each rank's slices computed and reduced give the unsharded logits.
struct ShardCase {
  const char* model;
  const char* options;
};

class ShardedForward : public ::testing::TestWithParam<ShardCase> {};

TEST_P(ShardedForward, MatchesUnsharded) {
  const ShardCase c = GetParam();
  test::ScratchDir scratch;
  const std::string out = scratch / "out";
  std::string log;
  ASSERT_EQ(test::run_command(test::ckpt_binary() + " shard " + testdata(c.model) + " " + out + " " + c.options + " -q", &log), 0)
      << log;
  auto whole = Model::open(testdata(c.model));
  auto sharded = Model::open(out);
  EXPECT_FALSE(sharded->parallelism().empty());
  TokenIds ids = seeded_token_ids(whole->config().vocab, 2, 6, 4);
  std::vector<double> a = run(*whole, ids), b = run(*sharded, ids);
  EXPECT_LE(max_abs_diff(a, b), 1e-9 * range_of(a)) << c.model << " " << c.options;
}

INSTANTIATE_TEST_SUITE_P(
    Shard, ShardedForward,
    ::testing::Values(ShardCase{"llama", "--tp 2"}, ShardCase{"llama", "--tp 4"}, ShardCase{"llama", "--tp 2 --pp 2"},
                      ShardCase{"llama-tied", "--tp 2"}, ShardCase{"qwen2", "--tp 2"}, ShardCase{"qwen3", "--tp 4"},
                      ShardCase{"phi3", "--tp 2"}, ShardCase{"mixtral", "--tp 2"}, ShardCase{"mixtral", "--tp 2 --ep"},
                      ShardCase{"qwen3-moe", "--tp 2"}, ShardCase{"mistral", "--tp 1 --pp 2"}),
    [](const auto& info) {
      std::string s = std::string(info.param.model) + "_" + info.param.options;
      std::string out;
      for (char ch : s)
        if (std::isalnum(static_cast<unsigned char>(ch))) out += ch;
        else if (!out.empty() && out.back() != '_') out += '_';
      return out;
    });

namespace {

// A copy of testdata model `dir` with config.json keys replaced.
std::string variant(const test::ScratchDir& scratch, const std::string& dir, const std::string& name, const ojson& changes) {
  const std::string out = scratch / name;
  std::filesystem::create_directory(out);
  for (const auto& e : std::filesystem::directory_iterator(testdata(dir)))
    if (e.path().filename() != "config.json" && e.path().filename() != "ckpt-manifest.json")
      std::filesystem::copy(e.path(), out + "/" + e.path().filename().string());
  ojson c = parse_strict_json(read_text_file(testdata(dir + "/config.json"))).value;
  for (const auto& [k, v] : changes.items()) c[k] = v;
  write_text_file(out + "/config.json", c.dump(2));
  return out;
}

}  // namespace

// Mistral's window W: a query sees itself and the W - 1 keys before it (transformers
// sliding_window_overlay: kv_idx > q_idx - W). With 2 layers, token 0 can reach positions up to
// 2 * (W - 1) and no further.
TEST(CpuForward, SlidingWindowReachesExactlyWMinusOneBack) {
  test::ScratchDir scratch;
  auto m = Model::open(variant(scratch, "mistral", "w2", ojson{{"sliding_window", 2}}));
  ASSERT_EQ(m->config().sliding_window, (std::vector<uint64_t>{2, 2}));
  const uint64_t V = m->config().vocab;
  TokenIds a{{7, 11, 13, 17, 19, 23}, 1, 6}, b = a;
  b.ids[0] = 8;
  std::vector<double> la = run(*m, a), lb = run(*m, b);
  auto same_at = [&](uint64_t t) {
    return std::equal(la.begin() + t * V, la.begin() + (t + 1) * V, lb.begin() + t * V);
  };
  EXPECT_FALSE(same_at(1));
  EXPECT_FALSE(same_at(2));
  EXPECT_TRUE(same_at(3));
  EXPECT_TRUE(same_at(5));
  // A window as long as the sequence is full causal attention.
  auto full = Model::open(testdata("mistral"));
  auto wide = Model::open(variant(scratch, "mistral", "w6", ojson{{"sliding_window", 6}}));
  EXPECT_EQ(run(*full, a), run(*wide, a));
}

// llama3 rope scaling (transformers _compute_llama3_parameters): wavelengths shorter than
// original_max / high_freq_factor keep their frequency, longer than original_max /
// low_freq_factor are divided by factor, and the band between moves smoothly from one to the other.
TEST(Rope, Llama3ScalingBands) {
  RopeConfig base;
  base.theta = 500000.0;
  base.rotary_dim = 128;
  RopeConfig l3 = base;
  l3.type = RopeType::kLlama3;
  l3.factor = 8;
  l3.low_freq_factor = 1;
  l3.high_freq_factor = 4;
  l3.original_max_position = 8192;
  const std::vector<double> f0 = rope_inv_freq(base), f = rope_inv_freq(l3);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_DOUBLE_EQ(f0[1], std::pow(500000.0, -2.0 / 128));
  int kept = 0, divided = 0, between = 0;
  double prev_ratio = 1;
  for (size_t i = 0; i < f.size(); ++i) {
    const double wavelen = 2 * M_PI / f0[i], ratio = f[i] / f0[i];
    if (wavelen < 8192.0 / 4) {
      EXPECT_DOUBLE_EQ(ratio, 1.0) << i;
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_NEAR(ratio, 1.0 / 8, 1e-15) << i;
      ++divided;
    } else {
      EXPECT_LT(ratio, 1.0) << i;
      EXPECT_GT(ratio, 1.0 / 8) << i;
      ++between;
    }
    EXPECT_LE(ratio, prev_ratio + 1e-15) << i;  // frequencies only ever scaled down further
    prev_ratio = ratio;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(between, 0);
  RopeConfig lin = base;
  lin.type = RopeType::kLinear;
  lin.factor = 2;
  EXPECT_DOUBLE_EQ(rope_inv_freq(lin)[5], f0[5] / 2);
}

TEST(CpuForward, MissingTensorAndWrongShapeAreRefusedNamingTheTensor) {
  test::ScratchDir scratch;
  const std::string dir = variant(scratch, "llama", "missing", ojson::object());
  std::vector<SmallTensor> all = read_small_safetensors(dir + "/model.safetensors");
  all.erase(std::remove_if(all.begin(), all.end(), [](const SmallTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; }),
            all.end());
  std::filesystem::remove(dir + "/model.safetensors");
  write_small_safetensors(dir + "/model.safetensors", all);
  try {
    Model::open(dir);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kMissingField) << e.what();
    EXPECT_EQ(e.tensor(), "model.layers.1.mlp.up_proj.weight");
  }
  const std::string narrow = variant(scratch, "llama", "narrow", ojson{{"intermediate_size", 64}});
  try {
    Model::open(narrow);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kTensorInvalidInfo) << e.what();
    EXPECT_EQ(e.tensor(), "model.layers.0.mlp.gate_proj.weight");
    EXPECT_NE(std::string(e.what()).find("expected [64, 64]"), std::string::npos) << e.what();
  }
}

// validate's GPU warm-up runs the model runtime on these fixtures (tests/gpu/test_gpu_validate):
// each is a model the runtime can build and run, here on the CPU reference.
TEST(CpuForward, ValidateFixturesAreModelsTheRuntimeRuns) {
  using namespace ckpt::test;
  ScratchDir tmp;
  std::vector<std::string> dirs;
  for (auto q : {FixtureQuant::kNone, FixtureQuant::kFp8Tensor, FixtureQuant::kFp8Channel, FixtureQuant::kFp8Block}) {
    const std::string dir = tmp / ("q" + std::to_string(static_cast<int>(q)));
    write_fixture(dir, llama_fixture(q), llama_fixture_config(q));
    dirs.push_back(dir);
  }
  write_tp_fixture(tmp / "tp", FixtureQuant::kFp8Tensor, 2);
  dirs.push_back(tmp / "tp");
  write_int4_fixture(tmp / "int4", "awq", false, 32);
  dirs.push_back(tmp / "int4");
  write_trained_int4(tmp / "marlin", "gptq", false, -1, true);
  dirs.push_back(tmp / "marlin");
  for (const std::string& dir : dirs) {
    auto m = model::Model::open(dir);
    model::CpuForward f(*m, 2, 1);
    const std::vector<double> logits = f.forward(model::seeded_token_ids(m->config().vocab, 2, 1, 5).ids, 1);
    for (double v : logits) ASSERT_TRUE(std::isfinite(v)) << dir;
  }
}

// A Marlin checkpoint with act-order (sorted g_idx and its sort indices) passes validate's CPU
// phases and reads as its GPTQ source: the same logits, to the bit.
TEST(CpuForward, MarlinActOrderReadsAsItsSource) {
  using namespace ckpt::test;
  ScratchDir tmp;
  write_trained_gptq_act_order(tmp / "m", true);
  auto v = run_cpu(tmp / "m");
  ASSERT_TRUE(v->report.ok()) << v->report.table();
  auto src = model::Model::open(tmp / "m.gptq");
  auto m = model::Model::open(tmp / "m");
  EXPECT_EQ(m->formats(), "28 int4 gptq marlin");
  const model::TokenIds ids = model::seeded_token_ids(src->config().vocab, 2, 6, 9);
  model::CpuForward a(*src, 2, 6), b(*m, 2, 6);
  EXPECT_EQ(a.forward(ids.ids, 6), b.forward(ids.ids, 6));
  // Sort indices that are not a permutation, and a g_idx out of order: each named.
  const std::string q = "model.layers.2.self_attn.q_proj.";
  for (const char* broken : {"g_idx_sort_indices", "g_idx"}) {
    ScratchDir t2;
    write_trained_gptq_act_order(t2 / "m", true);
    std::vector<FixtureTensor> ts = read_fixture_tensors(t2 / "m");
    for (auto& t : ts)
      if (t.name == q + broken) std::memcpy(t.bytes.data() + 4, t.bytes.data() + 8 * 4, 4);  // element 1 = element 8
    if (std::string(broken) == "g_idx")  // sorted g_idx: element 0 after a larger one
      for (auto& t : ts)
        if (t.name == q + broken) t.bytes[0] = 100;
    rewrite_fixture(t2 / "m", ts, ojson::parse(read_text_file(t2 / "m/config.json")));
    auto bad = run_cpu(t2 / "m");
    bool named = false;
    for (const auto& f : bad->report.failures()) named |= f.tensor == q + broken;
    EXPECT_TRUE(named) << broken << "\n" << bad->report.table();
  }
}
