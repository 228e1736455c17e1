#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/safetensors.h"

using namespace ckpt;

TEST(Writer, OrdersByDtypeDescendingThenName) {
  std::vector<HeaderEntry> e = {{"b", DType::BF16, {1}, 2}, {"a", DType::F32, {1}, 4}, {"c", DType::BOOL, {1}, 1},
                                {"a2", DType::BF16, {1}, 2}, {"w", DType::I64, {1}, 8}, {"B", DType::BF16, {1}, 2}};
  sort_like_reference_writer(e);
  std::vector<std::string> names;
  for (auto& x : e) names.push_back(x.name);
  EXPECT_EQ(names, (std::vector<std::string>{"w", "a", "B", "a2", "b", "c"}));
}

TEST(Writer, CompactJsonPaddedWithSpacesToEightBytes) {
  std::vector<HeaderEntry> e = {{"w", DType::I64, {1}, 8}, {"s", DType::F32, {}, 4}, {"u", DType::F32, {0, 2}, 0}};
  std::string h = build_safetensors_header(Metadata{{"format", "pt"}}, e);
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[8,12]},"u":{"dtype":"F32","shape":[0,2],"data_offsets":[12,12]}})";
  ASSERT_EQ(h.substr(0, json.size()), json);
  EXPECT_EQ(h.size() % 8, 0u);
  EXPECT_EQ(h.find_first_not_of(' ', json.size()), std::string::npos);
  // The reference's test_empty: {} and six spaces.
  EXPECT_EQ(build_safetensors_header(std::nullopt, {}), "{}      ");
}

TEST(Writer, EscapesLikeSerdeJson) {
  EXPECT_EQ(json_escape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(json_escape("\b\t\n\f\r"), "\\b\\t\\n\\f\\r");
  EXPECT_EQ(json_escape(std::string("\x01\x1f", 2)), "\\u0001\\u001f");
  EXPECT_EQ(json_escape("/\x7f\xc3\xa9"), "/\x7f\xc3\xa9");  // slash, DEL and UTF-8 stay raw
}

TEST(Writer, RefusesTheMetadataName) {
  EXPECT_THROW(check_writable_name("out.safetensors", "__metadata__"), Error);
  EXPECT_NO_THROW(check_writable_name("out.safetensors", ""));
}
