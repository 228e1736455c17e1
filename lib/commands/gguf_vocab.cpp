#include "commands/gguf_vocab.h"

#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "core/sha256.h"

namespace ckpt {

namespace {

using tok::PreTokenizerStep;

// llama.cpp's byte-level pre-tokenizers whose rules ckpt maps a tokenizer.json onto, each with
// the Split regex the Hugging Face tokenizer.json of its reference models carries
// (ggml-org/llama.cpp src/llama-vocab.cpp llm_tokenizer_bpe, "original regex from tokenizer.json").
enum class PreFamily { kOther, kLlama3, kQwen2, kGpt2 };

const std::string kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
const std::string kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

// Which regex family llama.cpp runs for a tokenizer.ggml.pre name (src/llama-vocab.cpp: the names
// mapped to LLAMA_VOCAB_PRE_TYPE_LLAMA3 / SMAUG / DBRX share one regex, QWEN2 / STABLELM2 /
// HUNYUAN / SOLAR_OPEN another, GPT2 / MPT / OLMO / JAIS / TRILLION / GRANITE_DOCLING a third).
PreFamily family_of(const std::string& name) {
  static const std::map<std::string, PreFamily> m = {
      {"llama-bpe", PreFamily::kLlama3},  {"llama3", PreFamily::kLlama3},     {"llama-v3", PreFamily::kLlama3},
      {"falcon3", PreFamily::kLlama3},    {"falcon-h1", PreFamily::kLlama3},  {"pixtral", PreFamily::kLlama3},
      {"midm-2.0", PreFamily::kLlama3},   {"lfm2", PreFamily::kLlama3},       {"jina-v5-nano", PreFamily::kLlama3},
      {"smaug-bpe", PreFamily::kLlama3},  {"dbrx", PreFamily::kLlama3},       {"qwen2", PreFamily::kQwen2},
      {"deepseek-r1-qwen", PreFamily::kQwen2}, {"kormo", PreFamily::kQwen2},  {"f2llmv2", PreFamily::kQwen2},
      {"megrez", PreFamily::kQwen2},      {"stablelm2", PreFamily::kQwen2},   {"hunyuan", PreFamily::kQwen2},
      {"solar-open", PreFamily::kQwen2},  {"gpt-2", PreFamily::kGpt2},        {"phi-2", PreFamily::kGpt2},
      {"jina-es", PreFamily::kGpt2},      {"jina-de", PreFamily::kGpt2},      {"gigachat", PreFamily::kGpt2},
      {"jina-v2-es", PreFamily::kGpt2},   {"jina-v2-de", PreFamily::kGpt2},   {"a.x-4.0", PreFamily::kGpt2},
      {"mellum", PreFamily::kGpt2},       {"modern-bert", PreFamily::kGpt2},  {"exaone4", PreFamily::kGpt2},
      {"jina-v1-en", PreFamily::kGpt2},   {"jina-v2-code", PreFamily::kGpt2}, {"roberta-bpe", PreFamily::kGpt2},
      {"mpt", PreFamily::kGpt2},          {"olmo", PreFamily::kGpt2},         {"jais", PreFamily::kGpt2},
      {"trillion", PreFamily::kGpt2},     {"granite-docling", PreFamily::kGpt2},
  };
  auto it = m.find(name);
  return it == m.end() ? PreFamily::kOther : it->second;
}

[[noreturn]] void refuse(const tok::TokenizerModel& m, const std::string& why) {
  fail(Errc::kTokenizerUnsupported, m.path, "", why + "; llama.cpp would tokenize differently, so no GGUF is written");
}

// The tokenizer.ggml.pre name for a byte-level BPE tokenizer, from its own definition.
std::string byte_level_pre_name(const tok::TokenizerModel& m) {
  // llama.cpp's BPE tokenizers normalize nothing. Qwen2/Qwen3's NFC is accepted as
  // convert_hf_to_gguf.py accepts it (text already in NFC, as most is, tokenizes the same);
  // any other normalizer is refused.
  if (!m.normalizer.empty() && !(m.normalizer.size() == 1 && m.normalizer[0].kind == tok::NormalizerStep::kNfc))
    refuse(m, "a byte-level BPE tokenizer with a normalizer other than NFC (llama.cpp's BPE normalizes nothing)");
  const auto& p = m.pre_tokenizer;
  PreFamily family = PreFamily::kOther;
  if (p.size() == 1 && p[0].kind == PreTokenizerStep::kByteLevel && p[0].use_regex && !p[0].add_prefix_space) {
    family = PreFamily::kGpt2;  // GPT-2's own ByteLevel regex
  } else if (p.size() == 2 && p[0].kind == PreTokenizerStep::kSplit && p[0].regex && !p[0].invert &&
             p[0].behavior == tok::SplitBehavior::kIsolated && p[1].kind == PreTokenizerStep::kByteLevel &&
             !p[1].use_regex && !p[1].add_prefix_space) {
    if (p[0].pattern == kLlama3Regex) family = PreFamily::kLlama3;
    if (p[0].pattern == kQwen2Regex) family = PreFamily::kQwen2;
  }
  // ignore_merges (a word that is a whole token is not merged) is part of the llama.cpp
  // pre-tokenizer: llama-bpe sets it, smaug-bpe / qwen2 / gpt-2 do not.
  switch (family) {
    case PreFamily::kLlama3: return m.ignore_merges ? "llama-bpe" : "smaug-bpe";
    case PreFamily::kQwen2:
      if (m.ignore_merges) refuse(m, "Qwen2's pre-tokenizer with ignore_merges (no llama.cpp pre-tokenizer has both)");
      return "qwen2";
    case PreFamily::kGpt2:
      if (m.ignore_merges) refuse(m, "GPT-2's pre-tokenizer with ignore_merges (no llama.cpp pre-tokenizer has both)");
      return "gpt-2";
    case PreFamily::kOther: break;
  }
  refuse(m, "its pre-tokenizer " + m.pre_tokenizer_json +
                " is none of those ckpt maps onto llama.cpp's (Llama-3's or Qwen2's Split regex then ByteLevel, or GPT-2's "
                "ByteLevel)");
}

// SentencePiece-style BPE in tokenizer.json (Llama-2's): spaces become "▁" by the normalizer
// (optionally prefixed with one), or by a Metaspace pre-tokenizer. Returns whether a "▁" is
// prepended (llama.cpp's tokenizer.ggml.add_space_prefix).
bool sentencepiece_style_space_prefix(const tok::TokenizerModel& m) {
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581
  const auto& n = m.normalizer;
  const auto& p = m.pre_tokenizer;
  if (p.empty()) {
    const bool prepend = !n.empty() && n[0].kind == tok::NormalizerStep::kPrepend && n[0].text == kSpace;
    const size_t r = prepend ? 1 : 0;
    if (n.size() == r + 1 && n[r].kind == tok::NormalizerStep::kReplace && !n[r].regex && n[r].text == " " &&
        n[r].content == kSpace)
      return prepend;
  } else if (n.empty() && p.size() == 1 && p[0].kind == PreTokenizerStep::kMetaspace && p[0].replacement == kSpace &&
             !p[0].split) {
    return p[0].prepend_scheme != PreTokenizerStep::Prepend::kNever;
  }
  refuse(m, "a SentencePiece-style BPE tokenizer whose normalizer / pre-tokenizer is not Llama-2's (\"▁\" for spaces)");
}

uint32_t token_id(const std::optional<int32_t>& id) { return static_cast<uint32_t>(*id); }

}  // namespace

const std::string& gguf_pre_check_text() {
  // ggml-org/llama.cpp convert_hf_to_gguf_update.py CHK_TXT (UTF-8 bytes).
  static const std::string text =
      "\012 \012\012 \012\012\012 \011 \011\011 \011\012  \012   \012    \012     \012\360\237\232\200 (normal) \360\237\230\266\342\200\215\360\237\214\253\357\270\217 (multiple emojis concatenated) \342\234\205 \360\237\246\231\360\237\246\231 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \341\236\200\341\236\266\341\236\223\341\237\213\341\236\217\341\237\202\341\236\226\341\236\267\341\236\237\341\237\201\341\236\237\341\236\242\341\236\266\341\236\205\360\237\230\201 \077\346\210\221\346\203\263\345\234\250apple\345\267\245\344\275\2341314151\345\244\251\357\275\236 ------======= \320\275\320\265\321\211\320\276 \320\275\320\260 \320\221\321\212\320\273\320\263\320\260\321\200\321\201\320\272\320\270 ''''''```````\042\042\042\042......!!!!!!\077\077\077\077\077\077 I've been 'told he's there, 'RE you sure\077 'M not sure I'll make it, 'D you like some tea\077 We'Ve a'lL";
  return text;
}

std::string gguf_pre_hash(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return sha256_hex(s + "]");
}

std::string gguf_pre_name_of_hash(const std::string& hash) {
  // ggml-org/llama.cpp conversion/base.py get_vocab_base_pre (v0.4.0), hash -> tokenizer.ggml.pre.
  static const std::map<std::string, std::string> table = {
      {"b6e8e1518dc4305be2fe39c313ed643381c4da5db34a98f6a04c093f8afbe99b", "chatglm-bpe"},
      {"81d72c7348a9f0ebe86f23298d37debe0a5e71149e29bd283904c02262b27516", "chatglm-bpe"},
      {"a1336059768a55c99a734006ffb02203cd450fed003e9a71886c88acf24fdbc2", "glm4"},
      {"9ca2dd618e8afaf09731a7cf6e2105b373ba6a1821559f258b272fe83e6eb902", "glm4"},
      {"cdf5f35325780597efd76153d4d1c16778f766173908894c04afc20108536267", "glm4"},
      {"1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35", "minerva-7b"},
      {"7e57df22b1fe23a7b1e1c7f3dc4e3f96d43a4eb0836d0c6bdc3436d7b2f1c664", "hunyuan"},
      {"bba3b3366b646dbdded5dbc42d59598b849371afc42f7beafa914afaa5b70aa6", "hunyuan-dense"},
      {"a6b57017d60e6edb4d88ecc2845188e0eb333a70357e45dcc9b53964a73bbae6", "falcon-h1"},
      {"60476e1243776c4fb1b993dbd7a5f15ac22f83c80afdf425fa5ae01c8d44ef86", "falcon-h1"},
      {"3eda48b4c4dc7de733d1a8b3e3b4a85243dbbf704da2ee9d42c6beced8897896", "falcon-h1"},
      {"48f8e02c0359c0bbdd82f26909171fac1c18a457bb47573ed1fe3bbb2c1cfd4b", "falcon-h1"},
      {"81212dc7cdb7e0c1074ca62c5aeab0d43c9f52b8a737be7b12a777c953027890", "kimi-k2"},
      {"d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c", "qwen2"},
      {"1444df51289cfa8063b96f0e62b1125440111bc79a52003ea14b6eac7016fd5f", "qwen35"},
      {"66b8d4e19ab16c3bfd89bce5d785fb7e0155e8648708a1f42077cb9fe002c273", "grok-2"},
      {"b3d1dd861f1d4c5c0d2569ce36baf3f90fe8a102db3de50dd71ff860d91be3df", "jina-v2-de"},
      {"0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4", "gpt-2"},
      {"9e454714343b69b99b71795c1d27a68c2a1d15dab111f4d353109f966af29da7", "lfm2"},
      {"0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe"},
      {"049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754", "deepseek-llm"},
      {"347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821", "deepseek-coder"},
      {"8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed", "falcon"},
      {"0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f", "bert-bge"},
      {"9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e", "falcon3"},
      {"8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7", "bert-bge-large"},
      {"b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "mpt"},
      {"35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34", "starcoder"},
      {"3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2"},
      {"32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3", "stablelm2"},
      {"6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff", "refact"},
      {"9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8", "command-r"},
      {"d772b220ace2baec124bed8cfafce0ead7d6c38a4b65ef11261cf9d5d62246d1", "tiny_aya"},
      {"52df12b4c8d4176e7481aab4b6e8454d1fd0a210a04a574f6d4e067d10e23c3e", "cohere2moe"},
      {"e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2"},
      {"b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "olmo"},
      {"a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e", "dbrx"},
      {"c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448", "jina-v1-en"},
      {"0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f", "jina-v2-en"},
      {"171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643", "jina-v2-es"},
      {"27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6", "jina-v2-de"},
      {"a023e9fdc5a11f034d3ef515b92350e56fb2af1f66c6b6811a4444ea9bf8763d", "jina-v5-nano"},
      {"c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d", "smaug-bpe"},
      {"c7ea5862a53e4272c035c8238367063e2b270d51faa48c0f09e9d5b54746c360", "poro-chat"},
      {"7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a", "jina-v2-code"},
      {"7fc505bd3104ca1083b150b17d088b59534ede9bde81f0dd2090967d7fe52cee", "viking"},
      {"b53802fb28e26d645c3a310b34bfe07da813026ec7c7716883404d5e0f8b1901", "jais"},
      {"bc5108ee1eb6a3d600cadd065f63190fbd0554dbc9e4bbd6a0d977970afc8d2a", "jais-2"},
      {"7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f", "codeshell"},
      {"63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e", "tekken"},
      {"855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249", "smollm"},
      {"3c30d3ad1d6b64202cd222813e7736c2db6e1bd6d67197090fc1211fbc612ae7", "bloom"},
      {"bc01ce58980e1db43859146dc51b1758b3b88729b217a74792e9f8d43e479d21", "gpt3-finnish"},
      {"4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae", "exaone"},
      {"fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085", "phi-2"},
      {"60824e3c0d9401f89943cbb2fff727f0e2d4c545ba4df2d6e4f09a6db0f5b450", "chameleon"},
      {"8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65", "roberta-bpe"},
      {"ad851be1dba641f2e3711822f816db2c265f788b37c63b4e1aeacb9ee92de8eb", "gigachat"},
      {"d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1", "megrez"},
      {"877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5", "deepseek-v3"},
      {"b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5", "deepseek-r1-qwen"},
      {"ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e", "gpt-4o"},
      {"7dec86086fcc38b66b7bc1575a160ae21cf705be7718b9d5598190d7c12db76f", "superbpe"},
      {"1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15", "trillion"},
      {"96a5f08be6259352137b512d4157e333e21df7edd3fcd152990608735a65b224", "bailingmoe"},
      {"d353350c764d8c3b39c763113960e4fb4919bea5fbf208a0e3b22e8469dc7406", "llama4"},
      {"0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3", "pixtral"},
      {"d5f1dd6f980fec569fb218a81a7658ac45fc56b38c5a0adeb1c232fbe04ef5ec", "seed-coder"},
      {"b0a6b1c0bd5998ebd9df08611efde34a4ff03faed45ae09c43e6b31ebd4b94cf", "a.x-4.0"},
      {"f6791d196f87ce6b56a7d234be618e0d58f8cda3549416635b2bebcd22cd95c4", "midm-2.0"},
      {"169bf0296a13c4d9b7672313f749eb36501d931022de052aad6e36f2bf34dd51", "lfm2"},
      {"2085e1638f6c377a0aa4ead21b27bb4cb941bf800df86ed391011769c1758dfb", "exaone4"},
      {"a1e163ecab2e718a4c829d1148b6e86824ec36163bb71941c3dca9cd5ac25756", "mellum"},
      {"a0b64b4385f123663873756336c085744376d015ff328bb1d901598f63c44152", "modern-bert"},
      {"49fc0303c9e0d2c2c565c510f64b2d9b271276acdcdadff733249eda9f7d59df", "afmoe"},
      {"9b1be57e70d20d9501b2b3186e792d81181ae36ada3903c26f9fea418cf87206", "bailingmoe2"},
      {"53e325976a6e142379c19b09afcae354f2f496f147afa8f9e189a33fe4e3024e", "granite-docling"},
      {"f4f37b6c8eb9ea29b3eac6bb8c8487c5ab7885f8d8022e67edc1c68ce8403e95", "minimax-m2"},
      {"4a2e2abae11ca2b86d570fc5b44be4d5eb5e72cc8f22dd136a94b37da83ab665", "kormo"},
      {"9d70134b369a70e5735009b6de918f7581b5211f7c074d1f89f753aea8248af1", "youtu"},
      {"16389f0a1f51ee53e562ffd51c371dc508639ab0e4261502071836e50e223e91", "solar-open"},
      {"6c81ce329e0802883b22eabab0d3fa48357337ef1ecb45443828bf1f6254833f", "exaone-moe"},
      {"d30d75d9059f1aa2c19359de71047b3ae408c70875e8a3ccf8c5fba56c9d8af4", "qwen35"},
      {"b4b8ca1f9769494fbd956ebc4c249de6131fb277a4a3345a7a92c7dd7a55808d", "joyai-llm"},
      {"e4d54df1ebc1f2b91acd986c5b51aa50837d5faf7c7398e73c1f9e9ee5d19869", "kanana2"},
      {"862f827721df956049dff5ca81a57f29e575280bc622e290d3bf4e35eca29015", "f2llmv2"},
      {"62f6fb0a6fd5098caeabb19b07a5c1099cafc8b9c40eab6ea89ece4ec02fbc57", "sarvam-moe"},
      {"f728162c1315c26e40249849799b4ba3fe584c32084b4795b03eb295e63cb5af", "talkie"},
      {"36f3066e97b7f3994b379aaacde306c1444c6ae84e81a5ae3cd2b7ed3b8c42d4", "minicpm5"},
      {"f241072145675bf8322086f115aebad05e9f869557a238bf2150a2a417d1bf60", "granite-embed-multi-97m"},
      {"789696f5946cc0fc59371f39f6097cafed196b3acded6140432f26bbb1ae1669", "granite-embed-multi-311m"},
      {"9dcf830ee9990cdbf78cc523a5f7bd9ad8f3f9890c2d3581d2785ad10f07049d", "mellum2"},
      {"972da7b59cec44d1f0a490a86c96df53859e486e481563e5dddac155013d87ac", "laguna"},
  };
  auto it = table.find(hash);
  return it == table.end() ? "" : it->second;
}

namespace {

GgufVocab gguf_vocab_of_files(const std::string& dir, const tok::ModelFileReader& read) {
  std::optional<tok::TokenizerModel> m = tok::load_tokenizer_model_from(dir, read);
  if (!m)
    fail(Errc::kInvalidArgument, dir, "",
         "no tokenizer.json or tokenizer.model beside the weights: a GGUF needs its tokenizer (llama.cpp refuses a file "
         "without tokenizer.ggml.model and cannot tokenize with an empty one)");
  return gguf_vocab_from(tok::Tokenizer(std::move(*m)));
}

}  // namespace

GgufVocab gguf_vocab_of_model(const Checkpoint& ck) {
  return gguf_vocab_of_files(ck.packed.value_or(ck.dir),
                             [&ck](const std::string& name) { return side_file_text(ck, name); });
}

GgufVocab gguf_vocab_of_model(const std::string& dir) { return gguf_vocab_of_files(dir, tok::directory_file_reader(dir)); }

GgufVocab gguf_vocab_from(const tok::Tokenizer& tokenizer) {
  const tok::TokenizerModel& m = tokenizer.model();
  GgufVocab v;
  if (m.kind == tok::ModelKind::kWordLevel)
    refuse(m, "a WordLevel tokenizer (llama.cpp has SentencePiece-style and byte-level BPE, not WordLevel)");
  const bool byte_level = m.kind == tok::ModelKind::kBpe && m.byte_level;
  v.model = byte_level ? "gpt2" : "llama";
  if (byte_level) {
    v.pre = byte_level_pre_name(m);
    // convert_hf_to_gguf.py hashes the ids of a fixed text (with the tokenizer's own special
    // tokens) and knows the pre-tokenizer only from that. The hash names a reference model's
    // tokenizer, so only tokenizers with that vocabulary match; when one does, llama.cpp's name
    // for it must run the same pre-tokenizer rules as the name chosen here.
    v.pre_hash = gguf_pre_hash(tokenizer.encode(gguf_pre_check_text(), true));
    v.pre_hash_name = gguf_pre_name_of_hash(v.pre_hash);
    if (!v.pre_hash_name.empty() && family_of(v.pre_hash_name) != family_of(v.pre))
      refuse(m, "its pre-tokenizer definition is llama.cpp's '" + v.pre + "', but llama.cpp's table of tokenizer hashes "
                "knows it as '" + v.pre_hash_name + "' (hash " + v.pre_hash + "), which splits text differently");
  } else {
    if (m.kind == tok::ModelKind::kBpe) {
      if (m.ignore_merges) refuse(m, "a SentencePiece-style BPE tokenizer with ignore_merges");
      if (!sentencepiece_style_space_prefix(m)) v.add_space_prefix = false;  // llama.cpp's default is true
    }
    v.pre = "default";
  }
  // For a SentencePiece-style tokenizer.json there are no piece scores: llama.cpp's SentencePiece
  // tokenizer merges the adjacent pair whose merged token scores highest (leftmost first), the
  // Hugging Face BPE the pair of lowest merge rank (leftmost first), so a token's score is minus
  // the rank of the first merge that makes it. (convert writes -1000 for every token, gguf-py
  // vocab.py LlamaHfVocab "placeholder", which merges left to right instead.)
  std::unordered_map<std::string, size_t> merge_rank;
  if (!byte_level && m.scores.empty()) {
    merge_rank.reserve(m.merges.size());
    for (size_t i = 0; i < m.merges.size(); ++i) merge_rank.emplace(m.merges[i].first + m.merges[i].second, i);
  }
  v.tokens.reserve(m.vocab.size());
  v.types.reserve(m.vocab.size());
  if (!byte_level) v.scores.reserve(m.vocab.size());
  for (size_t id = 0; id < m.vocab.size(); ++id) {
    const auto type = m.token_types.at(id);
    const bool hole = m.vocab[id].empty() && type == tok::TokenType::kUnused;
    // Ids no file assigns: convert's "[PAD<id>]" (conversion/base.py get_vocab_base).
    v.tokens.push_back(hole ? "[PAD" + std::to_string(id) + "]" : m.vocab[id]);
    v.types.push_back(static_cast<int32_t>(type));
    if (byte_level) continue;
    if (!m.scores.empty()) {
      v.scores.push_back(m.scores.at(id));
    } else {
      auto it = merge_rank.find(m.vocab[id]);
      v.scores.push_back(it != merge_rank.end() ? -static_cast<float>(it->second)
                                                : -static_cast<float>(m.merges.size() + id));
    }
  }
  if (byte_level)
    for (const auto& [a, b] : m.merges) {
      // convert joins a pair with one space after turning spaces inside a part into U+0120
      // (gguf-py vocab.py SpecialVocab._try_load_merges_txt / ggml-org/llama.cpp#9692).
      auto esc = [](std::string s) {
        for (size_t p; (p = s.find(' ')) != std::string::npos;) s.replace(p, 1, "\xC4\xA0");
        return s;
      };
      v.merges.push_back(esc(a) + " " + esc(b));
    }
  if (m.bos_id) v.bos = token_id(m.bos_id);
  if (m.eos_id) v.eos = token_id(m.eos_id);
  if (m.unk_id) v.unk = token_id(m.unk_id);
  if (m.pad_id) v.pad = token_id(m.pad_id);
  // Always explicit: llama.cpp's defaults depend on the tokenizer type and pre name.
  v.add_bos = m.add_bos;
  v.add_eos = m.add_eos;
  v.chat_template = m.chat_template;
  return v;
}

}  // namespace ckpt
