#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/container.h"
#include "formats/safetensors.h"
#include "formats/safetensors_small.h"
#include "test_support.h"

using namespace ckpt;

// The order comes from the container's lay_out, the one Plan::finalize and the small-file writer use.
TEST(Writer, OrdersByDtypeDescendingThenName) {
  std::vector<ContainerTensor> e = {{"b", DType::BF16, {1}, 2}, {"a", DType::F32, {1}, 4}, {"c", DType::BOOL, {1}, 1},
                                    {"a2", DType::BF16, {1}, 2}, {"w", DType::I64, {1}, 8}, {"B", DType::BF16, {1}, 2}};
  const ContainerLayout l = safetensors_container()->lay_out("out.safetensors", e);
  std::vector<std::string> names;
  for (size_t i : l.order) names.push_back(e[i].name);
  EXPECT_EQ(names, (std::vector<std::string>{"w", "a", "B", "a2", "b", "c"}));
  // Back to back after the header, in that order.
  std::vector<uint64_t> offsets = {l.head.size()};
  for (size_t i : l.order) offsets.push_back(offsets.back() + e[i].nbytes);
  offsets.pop_back();
  EXPECT_EQ(l.offsets, offsets);
  EXPECT_EQ(l.size, l.head.size() + 19);
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

// The small-file writer lays its file out with the same container: the strict reader accepts it,
// data lands in the reference order, and every tensor reads back with its own bytes.
TEST(Writer, SmallFilesUseTheContainerLayout) {
  ckpt::test::ScratchDir dir;
  const std::string path = dir / "small.safetensors";
  write_small_safetensors(path, {{"b", DType::BF16, {2}, {1, 2, 3, 4}},
                                 {"a", DType::F32, {1}, {5, 6, 7, 8}},
                                 {"z", DType::U8, {0}, {}},
                                 {"c", DType::I64, {1}, {9, 10, 11, 12, 13, 14, 15, 16}}});
  File f = File::open_read(path);
  SafetensorsHeader h = read_safetensors_header(f);
  std::vector<std::pair<uint64_t, std::string>> by_offset;
  for (const auto& t : h.tensors) by_offset.emplace_back(t.begin, t.name);
  std::sort(by_offset.begin(), by_offset.end());
  std::vector<std::string> order;
  for (const auto& [off, name] : by_offset) order.push_back(name);
  EXPECT_EQ(order, (std::vector<std::string>{"c", "a", "b", "z"}));
  std::map<std::string, std::vector<uint8_t>> got;
  for (auto& t : read_small_safetensors(path)) got[t.name] = t.bytes;
  EXPECT_EQ(got["a"], (std::vector<uint8_t>{5, 6, 7, 8}));
  EXPECT_EQ(got["b"], (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(got["c"], (std::vector<uint8_t>{9, 10, 11, 12, 13, 14, 15, 16}));
  EXPECT_TRUE(got["z"].empty());
}
