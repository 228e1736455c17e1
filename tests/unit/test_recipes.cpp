// Recipes: parsing, glob matching, module expansion, choice by architecture, and coverage of
// every tensor of every testdata model.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "recipes/recipe.h"
#include "test_support.h"

using namespace ckpt;
using ckpt::test::testdata;

namespace {

std::string recipes_dir() { return testdata("../recipes"); }

Errc error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error";
  return Errc::kCheckFailed;
}

ojson json(const char* text) { return parse_strict_json(text).value; }

}  // namespace

TEST(Glob, StarMatchesAnyRunIncludingDots) {
  EXPECT_TRUE(glob_match("model.layers.*.mlp.up_proj.weight", "model.layers.12.mlp.up_proj.weight"));
  EXPECT_TRUE(glob_match("model.layers.*.mlp.experts.*.w1.weight", "model.layers.0.mlp.experts.7.w1.weight"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("model.layers.*.mlp.gate.*", "model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(glob_match("lm_head.weight", "lm_head.weight2"));
  EXPECT_FALSE(glob_match("a*b", "a"));
}

TEST(Recipe, ModuleRuleCoversWeightThenCompanions) {
  Recipe r = Recipe::parse(json(R"({"name":"t","architectures":["X"],"rules":[
      {"module":"m.q_proj","role":"q_heads","linear":true,"group":"qkv"},
      {"match":"m.norm.weight","role":"replicated"}]})"),
                           "t.json");
  const RecipeRule* w = r.match("m.q_proj.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->role, TensorRole::kQHeads);
  EXPECT_TRUE(w->linear);
  EXPECT_TRUE(w->quantize);  // defaults to linear
  for (const char* companion : {"m.q_proj.bias", "m.q_proj.weight_scale", "m.q_proj.weight_scale_inv",
                                "m.q_proj.input_scale", "m.q_proj.qweight", "m.q_proj.qzeros", "m.q_proj.scales",
                                "m.q_proj.g_idx"}) {
    const RecipeRule* c = r.match(companion);
    ASSERT_NE(c, nullptr) << companion;
    EXPECT_EQ(c->role, TensorRole::kQHeads) << companion;
    EXPECT_FALSE(c->linear) << companion;
    EXPECT_FALSE(c->quantize) << companion;
    EXPECT_EQ(c->group, "qkv");
  }
  EXPECT_EQ(r.match("m.k_proj.weight"), nullptr);
}

TEST(Recipe, RefusesMalformedDocuments) {
  const char* bad[] = {
      R"([])",
      R"({"name":"t","architectures":[],"rules":[{"match":"a","role":"row"}]})",
      R"({"name":"t","architectures":["X"],"rules":[]})",
      R"({"name":"t","architectures":["X"],"rules":[{"match":"a","role":"diagonal"}]})",
      R"({"name":"t","architectures":["X"],"rules":[{"match":"a","module":"b","role":"row"}]})",
      R"({"name":"t","architectures":["X"],"rules":[{"role":"row"}]})",
      R"({"name":"t","architectures":["X"],"rules":[{"match":"a","role":"row","linear":"yes"}]})",
      R"({"name":"t","architectures":["X"],"rules":[{"match":"a","role":"row","split":1}]})",
      R"({"name":"t","architectures":["X"],"rules":[{"match":"a","role":"row","quantize":true}]})",
      R"({"name":"t","architectures":["X"],"rules":[{"match":"a","role":"row"}],"extra":1})",
  };
  for (const char* doc : bad)
    EXPECT_EQ(error_of([&] { Recipe::parse(json(doc), "bad.json"); }), Errc::kInvalidArgument) << doc;
}

TEST(Recipe, EveryShippedRecipeLoads) {
  size_t count = 0;
  for (const auto& e : std::filesystem::directory_iterator(recipes_dir())) {
    if (e.path().extension() != ".json") continue;  // recipes/jobs/: scheduler examples
    Recipe r = Recipe::load_file(e.path().string());
    EXPECT_FALSE(r.rules().empty());
    ++count;
  }
  EXPECT_EQ(count, 7u);
}

// Every tensor of every testdata model matches a rule of the recipe its architecture selects,
// with the role the vLLM reference gives it.
TEST(Recipe, CoversEveryTestdataModel) {
  const std::map<std::string, std::string> expected_recipe = {
      {"llama", "llama"},       {"llama-sharded", "llama"}, {"llama-tied", "llama"},
      {"mistral", "llama"},     {"qwen2", "qwen2"},         {"qwen3", "qwen3"},     {"mixtral", "mixtral"},
      {"qwen3-moe", "qwen_moe"}, {"deepseek-v3", "deepseek"}, {"phi3", "phi3"},
  };
  for (const auto& [dir, name] : expected_recipe) {
    Checkpoint ck = open_checkpoint(testdata(dir));
    Recipe r = Recipe::for_checkpoint(ck, recipes_dir());
    EXPECT_EQ(r.name(), name) << dir;
    EXPECT_TRUE(r.unmatched(ck).empty()) << dir << ": " << r.unmatched(ck).front();
    EXPECT_NO_THROW(r.check_covers(ck)) << dir;
  }
}

TEST(Recipe, RolesOfRepresentativeTensors) {
  struct Case {
    const char* dir;
    const char* tensor;
    TensorRole role;
    bool linear, quantize, expert;
  };
  const Case cases[] = {
      {"llama", "model.embed_tokens.weight", TensorRole::kVocab, false, false, false},
      {"llama", "lm_head.weight", TensorRole::kVocab, true, false, false},
      {"llama", "model.layers.0.self_attn.q_proj.weight", TensorRole::kQHeads, true, true, false},
      {"llama", "model.layers.0.self_attn.k_proj.weight", TensorRole::kKvHeads, true, true, false},
      {"llama", "model.layers.1.self_attn.o_proj.weight", TensorRole::kRow, true, true, false},
      {"llama", "model.layers.1.mlp.gate_proj.weight", TensorRole::kColumn, true, true, false},
      {"llama", "model.layers.1.mlp.down_proj.weight", TensorRole::kRow, true, true, false},
      {"llama", "model.layers.1.input_layernorm.weight", TensorRole::kReplicated, false, false, false},
      {"qwen2", "model.layers.0.self_attn.v_proj.bias", TensorRole::kKvHeads, false, false, false},
      {"qwen3", "model.layers.0.self_attn.q_norm.weight", TensorRole::kReplicated, false, false, false},
      {"mixtral", "model.layers.0.block_sparse_moe.gate.weight", TensorRole::kReplicated, true, false, false},
      {"mixtral", "model.layers.0.block_sparse_moe.experts.3.w2.weight", TensorRole::kRow, true, true, true},
      {"qwen3-moe", "model.layers.1.mlp.experts.0.up_proj.weight", TensorRole::kColumn, true, true, true},
      {"qwen3-moe", "model.layers.1.mlp.gate.weight", TensorRole::kReplicated, true, false, false},
      {"deepseek-v3", "model.layers.1.mlp.gate.e_score_correction_bias", TensorRole::kReplicated, false, false, false},
      {"deepseek-v3", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", TensorRole::kReplicated, true, true, false},
      {"deepseek-v3", "model.layers.0.self_attn.kv_b_proj.weight", TensorRole::kQHeads, true, true, false},
      {"deepseek-v3", "model.layers.1.mlp.shared_experts.down_proj.weight", TensorRole::kRow, true, true, false},
      {"deepseek-v3", "model.layers.0.mlp.up_proj.weight", TensorRole::kColumn, true, true, false},
      {"phi3", "model.layers.0.self_attn.qkv_proj.weight", TensorRole::kFusedQkv, true, true, false},
      {"phi3", "model.layers.0.mlp.gate_up_proj.weight", TensorRole::kFusedGateUp, true, true, false},
  };
  for (const auto& c : cases) {
    Checkpoint ck = open_checkpoint(testdata(c.dir));
    ASSERT_NE(ck.find(c.tensor), nullptr) << c.tensor;
    Recipe r = Recipe::for_checkpoint(ck, recipes_dir());
    const RecipeRule* rule = r.match(c.tensor);
    ASSERT_NE(rule, nullptr) << c.tensor;
    EXPECT_EQ(rule->role, c.role) << c.dir << " " << c.tensor;
    EXPECT_EQ(rule->linear, c.linear) << c.dir << " " << c.tensor;
    EXPECT_EQ(rule->quantize, c.quantize) << c.dir << " " << c.tensor;
    EXPECT_EQ(rule->expert, c.expert) << c.dir << " " << c.tensor;
  }
}

TEST(Recipe, UnmatchedTensorIsAnErrorListingIt) {
  Checkpoint ck = open_checkpoint(testdata("llama"));
  Recipe r = Recipe::parse(json(R"({"name":"partial","architectures":["LlamaForCausalLM"],"rules":[
      {"match":"model.layers.*","role":"replicated"}]})"),
                           "partial.json");
  auto missing = r.unmatched(ck);
  ASSERT_EQ(missing.size(), 3u);  // embed_tokens, lm_head, model.norm
  try {
    r.check_covers(ck);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUnsupported);
    std::string msg = e.what();
    EXPECT_NE(msg.find("lm_head.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.embed_tokens.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.norm.weight"), std::string::npos) << msg;
  }
}

TEST(Recipe, UnknownArchitectureNamesTheAvailableRecipes) {
  ckpt::test::ScratchDir dir;
  Checkpoint ck = open_checkpoint(testdata("llama"));
  ck.config = json(R"({"architectures":["GPTNeoXForCausalLM"]})");
  try {
    Recipe::for_checkpoint(ck, recipes_dir());
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("GPTNeoXForCausalLM"), std::string::npos) << msg;
    EXPECT_NE(msg.find("MixtralForCausalLM"), std::string::npos) << msg;
  }
}
