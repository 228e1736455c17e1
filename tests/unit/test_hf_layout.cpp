#include <gtest/gtest.h>

#include "commands/hf_layout.h"
#include "formats/hf_index.h"

using namespace ckpt;

TEST(HfLayout, NaturalOrderComparesNumbersAsNumbers) {
  EXPECT_TRUE(natural_less("model.layers.2.x", "model.layers.10.x"));
  EXPECT_FALSE(natural_less("model.layers.10.x", "model.layers.2.x"));
  EXPECT_TRUE(natural_less("a.b", "a.c"));
  EXPECT_TRUE(natural_less("a", "a.b"));
}

TEST(HfLayout, LayerKeyIsTheNameUpToItsFirstNumber) {
  EXPECT_EQ(layer_key("model.layers.3.mlp.up_proj.weight"), "model.layers.3");
  EXPECT_EQ(layer_key("model.layers.3.mlp.experts.7.w1.weight"), "model.layers.3");
  EXPECT_EQ(layer_key("model.embed_tokens.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(layer_key("lm_head.weight"), "lm_head.weight");
}

TEST(HfLayout, ShardsKeepLayersTogetherAndNeverSplitTensors) {
  std::vector<std::pair<std::string, uint64_t>> t = {
      {"model.embed_tokens.weight", 40}, {"model.layers.0.a", 30}, {"model.layers.0.b", 30},
      {"model.layers.1.a", 30},          {"model.layers.1.b", 30}, {"model.layers.10.a", 10},
      {"model.norm.weight", 5},          {"lm_head.weight", 150},
  };
  size_t count = 0;
  auto s = assign_shards(t, 100, &count);
  // Natural order: lm_head (150, alone: larger than the limit), embed (40, new shard), layer 0
  // (60: 40 + 60 = 100 fits), layer 1 (60, new shard), layer 10 (10) and norm (5) after it.
  EXPECT_EQ(count, 3u);
  EXPECT_EQ(s[7], 0u);
  EXPECT_EQ(s[0], 1u);
  EXPECT_EQ(s[1], 1u);
  EXPECT_EQ(s[2], 1u);
  EXPECT_EQ(s[3], 2u);
  EXPECT_EQ(s[4], 2u);
  EXPECT_EQ(s[5], 2u);
  EXPECT_EQ(s[6], 2u);
}

TEST(HfLayout, ALayerLargerThanAShardIsSplitBetweenTensors) {
  std::vector<std::pair<std::string, uint64_t>> t = {{"l.0.a", 60}, {"l.0.b", 60}, {"l.0.c", 60}};
  size_t count = 0;
  auto s = assign_shards(t, 100, &count);
  EXPECT_EQ(count, 3u);
  EXPECT_EQ(s, (std::vector<size_t>{0, 1, 2}));
}

TEST(HfLayout, ShardNamesAndIndexAsTransformersWritesThem) {
  EXPECT_EQ(shard_file_name("model", 1, 3, ".safetensors"), "model-00001-of-00003.safetensors");
  std::string idx = build_hf_index(30, {{"b", "f2"}, {"a", "f1"}}, {{"total_parameters", 15}});
  EXPECT_EQ(idx,
            "{\n  \"metadata\": {\n    \"total_parameters\": 15,\n    \"total_size\": 30\n  },\n"
            "  \"weight_map\": {\n    \"a\": \"f1\",\n    \"b\": \"f2\"\n  }\n}\n");
}
