// --part i/n: parsing, and the cut of a plan's files into parts of about equal bytes.
#include <gtest/gtest.h>

#include <numeric>

#include "plan/parts.h"

namespace ckpt {
namespace {

TEST(Parts, ParsesIndexOverCount) {
  auto p = parse_part("7/8");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->index, 7u);
  EXPECT_EQ(p->count, 8u);
  EXPECT_TRUE(parse_part("0/1"));
  for (const char* bad : {"8/8", "1/0", "-1/2", "a/b", "/2", "1/", "1", "1/2/3", " 1/2", "1/2 ", "1234567/9999999"})
    EXPECT_FALSE(parse_part(bad)) << bad;
}

Plan plan_of_sizes(const std::vector<uint64_t>& sizes) {
  Plan plan;
  for (size_t i = 0; i < sizes.size(); ++i) {
    OutputFile f;
    f.name = "f" + std::to_string(i);
    f.size = sizes[i];
    plan.files.push_back(f);
  }
  return plan;
}

std::vector<uint64_t> loads(const Plan& plan, const std::vector<uint32_t>& parts, uint32_t n) {
  std::vector<uint64_t> l(n, 0);
  for (size_t i = 0; i < parts.size(); ++i) l.at(parts[i]) += plan.files[i].size;
  return l;
}

// Largest file first to the lightest part: 10 | 9 | 8+1+1+1 ... balanced within one file.
TEST(Parts, CutsIntoAboutEqualBytes) {
  Plan plan = plan_of_sizes({1, 10, 8, 9, 1, 1, 5, 5});
  auto parts = assign_parts(plan, 3);
  auto l = loads(plan, parts, 3);
  EXPECT_EQ(std::accumulate(l.begin(), l.end(), uint64_t{0}), 40u);
  for (uint64_t x : l) EXPECT_LE(x, 14u);  // ideal 13.3; never more than one small file over
  EXPECT_EQ(parts, assign_parts(plan, 3)) << "the cut must be the same on every machine";
}

TEST(Parts, EqualFilesGoRoundTheParts) {
  Plan plan = plan_of_sizes(std::vector<uint64_t>(8, 100));
  auto parts = assign_parts(plan, 4);
  EXPECT_EQ(parts, (std::vector<uint32_t>{0, 1, 2, 3, 0, 1, 2, 3}));
}

TEST(Parts, MorePartsThanFilesLeavesEmptyParts) {
  Plan plan = plan_of_sizes({5, 7});
  auto parts = assign_parts(plan, 4);
  EXPECT_EQ(parts, (std::vector<uint32_t>{1, 0}));
}

TEST(Parts, StagingBesideTheDestination) {
  EXPECT_EQ(staging_path("/m/out"), "/m/out.ckpt-parts");
  EXPECT_EQ(staging_path("/m/out//"), "/m/out.ckpt-parts");
}

}  // namespace
}  // namespace ckpt
