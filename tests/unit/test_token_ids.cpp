// Token ids from the command line and from safetensors / JSON / .npy files: what is accepted, and
// one clear error for each malformed input.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "model/compare.h"
#include "model/token_ids.h"
#include "test_support.h"

using namespace ckpt;
using namespace ckpt::model;

namespace {

void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string npy(const std::string& descr, const std::string& shape, const std::string& data, const char* order = "False") {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
  h += std::string((64 - (10 + h.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h + data;
}

std::string le64(std::initializer_list<int64_t> v) {
  std::string s;
  for (int64_t x : v) s.append(reinterpret_cast<const char*>(&x), 8);
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

}  // namespace

TEST(TokenIds, CommandLineList) {
  TokenIds t = parse_id_list("1,5,9");
  EXPECT_EQ(t.ids, (std::vector<int64_t>{1, 5, 9}));
  EXPECT_EQ(t.sequences, 1u);
  EXPECT_EQ(t.length, 3u);
  for (const char* bad : {"", "1,,2", "1,-3", "1,x", "2,"})
    EXPECT_NE(error_of([&] { parse_id_list(bad); }).find("--ids"), std::string::npos) << bad;
}

TEST(TokenIds, FilesOfEveryKindRoundTrip) {
  test::ScratchDir d;
  write(d / "a.json", "[[1,2,3],[4,5,6]]");
  TokenIds j = read_token_ids(d / "a.json");
  EXPECT_EQ(j.sequences, 2u);
  EXPECT_EQ(j.ids, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  write(d / "b.npy", npy("<i8", "(2, 2)", le64({7, 8, 9, 10})));
  TokenIds n = read_token_ids(d / "b.npy");
  EXPECT_EQ(n.length, 2u);
  EXPECT_EQ(n.ids, (std::vector<int64_t>{7, 8, 9, 10}));
  write_token_ids(d / "c.safetensors", j);
  TokenIds s = read_token_ids(d / "c.safetensors");
  EXPECT_EQ(s.ids, j.ids);
  EXPECT_EQ(s.sequences, 2u);
}

TEST(TokenIds, MalformedFilesAreRefused) {
  test::ScratchDir d;
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect;
  };
  const Case cases[] = {
      {"ragged.json", "[[1,2],[3]]", "same length"},
      {"neg.json", "[1,-2]", "non-negative"},
      {"obj.json", "{\"a\":1}", "list of ids"},
      {"f4.npy", npy("<f4", "(2,)", std::string(8, '\0')), "int32, int64"},
      {"big.npy", npy(">i8", "(1,)", std::string(8, '\0')), "big-endian"},
      {"fortran.npy", npy("<i8", "(1, 1)", le64({1}), "True"), "C order"},
      {"short.npy", npy("<i8", "(3,)", le64({1, 2})), "does not match"},
      {"ids.txt", "1 2 3", ".safetensors, .json or .npy"},
  };
  for (const auto& c : cases) {
    write(d / c.name, c.bytes);
    const std::string e = error_of([&] { read_token_ids(d / c.name); });
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.name << ": " << e;
    EXPECT_NE(e.find(c.name), std::string::npos) << c.name << ": " << e;
  }
}

TEST(Perplexity, ChunkingIsChecked) {
  auto m = Model::open(test::testdata("llama"));
  TokenIds ids = seeded_token_ids(256, 1, 10, 1);
  EXPECT_NE(error_of([&] { perplexity(*m, ids, 1); }).find("at least 2"), std::string::npos);
  EXPECT_NE(error_of([&] { perplexity(*m, ids, 11); }).find("fewer than one chunk"), std::string::npos);
  PerplexityResult r = perplexity(*m, ids, 4);  // 2 chunks of 4, tokens 2 and 3 of each scored
  EXPECT_EQ(r.chunks, 2u);
  EXPECT_EQ(r.scored_tokens, 4u);
  EXPECT_GT(r.perplexity, 1.0);
  EXPECT_DOUBLE_EQ(r.chunk_perplexity.back(), r.perplexity);
}
