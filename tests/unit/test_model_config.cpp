// The model description read from config.json: every testdata architecture, both spellings of
// the rotary settings, per-family defaults, sliding windows, MoE routing, and a refusal (with
// the key named) for every setting the runtime does not compute.
#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "model/model_config.h"
#include "recipes/recipe.h"
#include "test_support.h"

using namespace ckpt;
using namespace ckpt::model;
using ckpt::test::testdata;

namespace {

ojson json(const std::string& text) {
  auto r = parse_strict_json(text);
  EXPECT_TRUE(r.ok) << r.error;
  return r.value;
}

ModelConfig of(const std::string& dir) { return model_config_of(open_checkpoint(testdata(dir))); }

// A small Llama config with `extra` merged in (keys of extra replace the base's; null deletes).
ojson llama_with(const std::string& extra) {
  ojson c = json(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
      "num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":256,
      "rms_norm_eps":1e-6,"rope_theta":10000.0})");
  const ojson changes = json(extra);
  for (const auto& [k, v] : changes.items()) {
    if (v.is_null()) c.erase(k);
    else c[k] = v;
  }
  return c;
}

ModelConfig read(const ojson& c) {
  Checkpoint ck;
  ck.config = c;
  std::optional<Recipe> recipe;
  try {
    recipe = Recipe::for_checkpoint(ck);
  } catch (const Error&) {
    recipe = Recipe::named("llama");  // an architecture no recipe knows: the model reader refuses it
  }
  return read_model_config(c, *recipe, "config.json");
}

// The error a config gets, with its message.
std::pair<Errc, std::string> error_of(const ojson& c) {
  try {
    read(c);
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  ADD_FAILURE() << "accepted: " << c.dump();
  return {Errc::kCheckFailed, ""};
}

}  // namespace

TEST(ModelConfig, TestdataLlama) {
  ModelConfig m = of("llama");
  EXPECT_EQ(m.family, Family::kLlama);
  EXPECT_EQ(m.recipe, "llama");
  EXPECT_EQ(m.vocab, 256u);
  EXPECT_EQ(m.hidden, 64u);
  EXPECT_EQ(m.intermediate, 128u);
  EXPECT_EQ(m.layers, 2u);
  EXPECT_EQ(m.heads, 8u);
  EXPECT_EQ(m.kv_heads, 2u);
  EXPECT_EQ(m.head_dim, 8u);
  EXPECT_DOUBLE_EQ(m.rms_eps, 1e-6);
  EXPECT_EQ(m.rope.type, RopeType::kDefault);  // transformers 5 rope_parameters
  EXPECT_DOUBLE_EQ(m.rope.theta, 10000.0);
  EXPECT_EQ(m.rope.rotary_dim, 8u);
  EXPECT_FALSE(m.tied_embeddings);
  EXPECT_FALSE(m.qkv_bias || m.o_bias || m.mlp_bias || m.qk_norm || m.fused_qkv);
  EXPECT_EQ(m.sliding_window, std::vector<uint64_t>(2, 0));
  EXPECT_FALSE(m.moe);
  EXPECT_EQ(m.bos_token, 1);
  EXPECT_EQ(m.eos_tokens, std::vector<int64_t>{2});
  EXPECT_TRUE(of("llama-tied").tied_embeddings);
}

TEST(ModelConfig, TestdataFamilies) {
  ModelConfig q2 = of("qwen2");
  EXPECT_EQ(q2.family, Family::kQwen2);
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  EXPECT_EQ(q2.vocab, 300u);

  ModelConfig q3 = of("qwen3");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.qkv_bias);
  EXPECT_EQ(q3.head_dim, 8u);

  ModelConfig phi = of("phi3");
  EXPECT_TRUE(phi.fused_qkv);
  EXPECT_TRUE(phi.fused_gate_up);
  EXPECT_DOUBLE_EQ(phi.rms_eps, 1e-5);
  EXPECT_EQ(phi.rope.rotary_dim, 8u);

  ModelConfig mx = of("mixtral");
  ASSERT_TRUE(mx.moe);
  EXPECT_EQ(mx.moe->experts, 4u);
  EXPECT_EQ(mx.moe->top_k, 2u);
  EXPECT_EQ(mx.moe->intermediate, 64u);
  EXPECT_TRUE(mx.moe->normalize_top_k);
  EXPECT_EQ(mx.moe_layer, std::vector<bool>(2, true));
  EXPECT_DOUBLE_EQ(mx.rope.theta, 1e6);

  ModelConfig qm = of("qwen3-moe");  // transformers 5 spells it num_local_experts
  ASSERT_TRUE(qm.moe);
  EXPECT_EQ(qm.moe->experts, 4u);
  EXPECT_EQ(qm.moe->intermediate, 32u);
  EXPECT_FALSE(qm.moe->normalize_top_k);
  EXPECT_EQ(qm.moe->shared_intermediate, 0u);
  EXPECT_TRUE(qm.qk_norm);
  EXPECT_EQ(qm.intermediate, 0u);  // no dense layer

  EXPECT_EQ(of("mistral").family, Family::kMistral);
}

TEST(ModelConfig, DeepSeekIsRefusedPlainly) {
  try {
    of("deepseek-v3");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("multi-head latent attention"), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, Llama3RopeScalingBothSpellings) {
  const char* scaling = R"({"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
                            "original_max_position_embeddings":8192})";
  ModelConfig a = read(llama_with(std::string(R"({"rope_theta":500000.0,"rope_scaling":)") + scaling + "}"));
  EXPECT_EQ(a.rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(a.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(a.rope.factor, 8.0);
  EXPECT_EQ(a.rope.original_max_position, 8192u);
  ojson p = json(scaling);
  p["rope_theta"] = 500000.0;
  ojson c = llama_with(R"({"rope_theta":null})");
  c["rope_parameters"] = p;
  ModelConfig b = read(c);
  EXPECT_EQ(b.rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(b.rope.theta, 500000.0);
  // 4.x "type" spelling, linear scaling.
  ModelConfig l = read(llama_with(R"({"rope_scaling":{"type":"linear","factor":2.0}})"));
  EXPECT_EQ(l.rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(l.rope.factor, 2.0);
}

TEST(ModelConfig, DefaultsFollowTheConfigurationClass) {
  ModelConfig m = read(llama_with(R"({"num_key_value_heads":null,"rms_norm_eps":null,"rope_theta":null})"));
  EXPECT_EQ(m.kv_heads, 8u);
  EXPECT_DOUBLE_EQ(m.rms_eps, 1e-6);
  EXPECT_DOUBLE_EQ(m.rope.theta, 10000.0);
  ojson q3 = llama_with(R"({"architectures":["Qwen3ForCausalLM"]})");
  EXPECT_EQ(read(q3).head_dim, 128u);  // Qwen3Config head_dim default
  q3["head_dim"] = 16;
  EXPECT_EQ(read(q3).head_dim, 16u);
}

TEST(ModelConfig, SlidingWindows) {
  ojson mistral = llama_with(R"({"architectures":["MistralForCausalLM"],"sliding_window":4})");
  EXPECT_EQ(read(mistral).sliding_window, (std::vector<uint64_t>{4, 4}));
  // Qwen2: only with use_sliding_window, and from max_window_layers on.
  ojson q2 = llama_with(R"({"architectures":["Qwen2ForCausalLM"],"sliding_window":4,"max_window_layers":1})");
  EXPECT_EQ(read(q2).sliding_window, (std::vector<uint64_t>{0, 0}));
  q2["use_sliding_window"] = true;
  EXPECT_EQ(read(q2).sliding_window, (std::vector<uint64_t>{0, 4}));
  q2["layer_types"] = json(R"(["sliding_attention","full_attention"])");
  EXPECT_EQ(read(q2).sliding_window, (std::vector<uint64_t>{4, 0}));
  // Llama has no sliding window whatever the config says.
  EXPECT_EQ(read(llama_with(R"({"sliding_window":4})")).sliding_window, (std::vector<uint64_t>{0, 0}));
}

TEST(ModelConfig, QwenMoeLayersAndSharedExpert) {
  ojson c = llama_with(R"({"architectures":["Qwen2MoeForCausalLM"],"num_hidden_layers":4,"num_experts":8,
      "num_experts_per_tok":2,"moe_intermediate_size":16,"shared_expert_intermediate_size":32,
      "norm_topk_prob":true,"decoder_sparse_step":2,"mlp_only_layers":[3]})");
  ModelConfig m = read(c);
  ASSERT_TRUE(m.moe);
  EXPECT_EQ(m.moe_layer, (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(m.intermediate, 128u);
  EXPECT_EQ(m.moe->shared_intermediate, 32u);
  EXPECT_TRUE(m.moe->normalize_top_k);
  EXPECT_TRUE(m.qkv_bias);
}

TEST(ModelConfig, RefusalsNameTheKey) {
  struct Case {
    const char* extra;
    Errc code;
    const char* key;
  };
  const Case cases[] = {
      {R"({"hidden_act":"gelu"})", Errc::kUnsupported, "hidden_act"},
      {R"({"rope_scaling":{"rope_type":"yarn","factor":4.0}})", Errc::kUnsupported, "rope_scaling.rope_type"},
      {R"({"rope_scaling":{"rope_type":"llama3","factor":8.0}})", Errc::kInvalidArgument, "low_freq_factor"},
      {R"({"rope_parameters":{"rope_type":"default"},"rope_scaling":{"rope_type":"default"}})", Errc::kInvalidArgument,
       "rope_parameters"},
      {R"({"rope_theta":10.0,"rope_parameters":{"rope_type":"default","rope_theta":20.0}})", Errc::kInvalidArgument,
       "rope_theta"},
      {R"({"num_key_value_heads":3})", Errc::kInvalidArgument, "num_key_value_heads"},
      {R"({"hidden_size":-4})", Errc::kInvalidArgument, "hidden_size"},
      {R"({"vocab_size":null})", Errc::kInvalidArgument, "vocab_size"},
      {R"({"partial_rotary_factor":0.5})", Errc::kUnsupported, "partial_rotary_factor"},
      {R"({"architectures":["GPT2LMHeadModel"]})", Errc::kUnsupported, "architectures"},
      {R"({"architectures":["Qwen3MoeForCausalLM"],"num_experts":4,"num_local_experts":8,"num_experts_per_tok":2,
          "moe_intermediate_size":8})",
       Errc::kInvalidArgument, "num_experts"},
      {R"({"architectures":["Qwen3MoeForCausalLM"],"num_experts":4,"num_experts_per_tok":2,"moe_intermediate_size":8,
          "use_sliding_window":true,"sliding_window":4})",
       Errc::kUnsupported, "use_sliding_window"},
      {R"({"architectures":["MistralForCausalLM"],"sliding_window":0})", Errc::kInvalidArgument, "sliding_window"},
      {R"({"architectures":["Qwen2ForCausalLM"],"layer_types":["sliding_attention","full_attention"]})",
       Errc::kInvalidArgument, "layer_types[0]"},
  };
  for (const auto& c : cases) {
    auto [code, message] = error_of(llama_with(c.extra));
    EXPECT_EQ(code, c.code) << c.extra << " -> " << message;
    EXPECT_NE(message.find(std::string(c.key) + ":"), std::string::npos) << c.extra << " -> " << message;
  }
}

TEST(ModelConfig, PartialRotaryForPhi3) {
  ojson c = llama_with(R"({"architectures":["Phi3ForCausalLM"],"partial_rotary_factor":0.5})");
  EXPECT_EQ(read(c).rope.rotary_dim, 4u);
  c["partial_rotary_factor"] = 0.1;  // int(0.8) = 0 rotary dims
  EXPECT_EQ(error_of(c).first, Errc::kInvalidArgument);
}

TEST(ModelConfig, RecipeMustDescribeTheLayout) {
  ojson c = llama_with("{}");
  Recipe phi = Recipe::named("phi3");
  try {
    read_model_config(c, phi, "config.json");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInvalidArgument);
  }
}
