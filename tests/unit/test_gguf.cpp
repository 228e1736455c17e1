// ckpt gguf without llama.cpp: the file layout (read back by an independent reader: strict running
// offsets, 32-byte alignment, ne innermost first), metadata types, tensor names and types per
// --type (convert's rules and llama-quantize's Q4_K_M mix), the Q/K row permutation, expert
// stacking, and the refusals. test_gguf_llama.cpp loads the same files in llama.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "checkpoint/checkpoint.h"
#include "commands/gguf.h"
#include "core/error.h"
#include "gguf_fixtures.h"
#include "gguf_read.h"
#include "ops/ggml_producer.h"
#include "plan/executor.h"
#include "test_support.h"

using namespace ckpt;
using namespace ckpt::test;

namespace {

test::GgufFile export_gguf(const std::string& model, GgufType type, const ScratchDir& d) {
  Checkpoint ck = open_checkpoint(testdata(model));
  GgufOptions o;
  o.type = type;
  Plan plan = plan_gguf(ck, test::byte_level_vocab(1, 2), o);
  ExecOptions e;
  e.threads = 2;
  execute(plan, d / "out", e);
  return test::read_gguf(d / "out/model.gguf");
}

std::set<std::string> names_of(const test::GgufFile& f) {
  std::set<std::string> s;
  for (const auto& t : f.tensors) s.insert(t.name);
  return s;
}

TEST(Gguf, LlamaLayoutNamesShapesAndKeyTypes) {
  ScratchDir d;
  const auto f = export_gguf("llama", GgufType::kF32, d);
  EXPECT_EQ(f.version, 3u);
  std::set<std::string> want = {"token_embd.weight", "output_norm.weight", "output.weight"};
  for (int l = 0; l < 2; ++l)
    for (const char* n : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"})
      want.insert("blk." + std::to_string(l) + "." + n + ".weight");
  EXPECT_EQ(names_of(f), want);
  EXPECT_EQ(f.tensor("token_embd.weight").ne, (std::vector<int64_t>{64, 256}));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").ne, (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").ne, (std::vector<int64_t>{128, 64}));
  // llama.cpp's loader order: file-level tensors, then blocks in order.
  EXPECT_EQ(f.tensors.front().name, "output.weight");
  EXPECT_EQ(f.tensors.back().name, "blk.1.ffn_up.weight");
  EXPECT_EQ(f.kv_at("general.architecture").str, "llama");
  EXPECT_EQ(f.u32("llama.context_length"), 128u);
  EXPECT_EQ(f.u32("llama.block_count"), 2u);
  EXPECT_EQ(f.u32("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(f.u32("llama.rope.dimension_count"), 8u);
  EXPECT_EQ(f.u32("general.file_type"), 0u);
  EXPECT_FLOAT_EQ(f.f32("llama.rope.freq_base"), 10000.0f);
  EXPECT_EQ(f.kv_at("tokenizer.ggml.token_type").elem_type, 5u);  // i32, as llama.cpp insists
  EXPECT_EQ(f.kv_at("tokenizer.ggml.tokens").count, 256u);
  EXPECT_FALSE(f.kv.count("general.alignment"));
}

TEST(Gguf, DtypesPerType) {
  ScratchDir d1, d2, d3;
  const auto f16 = export_gguf("llama", GgufType::kF16, d1);
  EXPECT_EQ(f16.tensor("blk.0.attn_q.weight").type, 1u);
  EXPECT_EQ(f16.tensor("blk.0.attn_norm.weight").type, 0u);  // norms stay F32
  const auto q8 = export_gguf("llama", GgufType::kQ8_0, d2);
  EXPECT_EQ(q8.tensor("blk.0.ffn_down.weight").type, 8u);
  EXPECT_EQ(q8.u32("general.file_type"), 7u);
  // Q4_K_M on 64-wide rows: K-quants need 256, so llama-quantize falls back (Q4_K -> Q5_0,
  // Q6_K -> Q8_0) and puts the output in Q8_0.
  const auto q4k = export_gguf("llama", GgufType::kQ4_K_M, d3);
  EXPECT_EQ(q4k.tensor("blk.0.attn_q.weight").type, 6u);
  // attn_v: use_more_bits(layer 1 of 2) -> Q6_K -> Q8_0; layer 0 keeps Q4_K -> Q5_0.
  EXPECT_EQ(q4k.tensor("blk.0.attn_v.weight").type, 6u);
  EXPECT_EQ(q4k.tensor("blk.1.attn_v.weight").type, 8u);
  EXPECT_EQ(q4k.tensor("blk.1.ffn_down.weight").type, 8u);
  EXPECT_EQ(q4k.tensor("output.weight").type, 8u);
  EXPECT_EQ(q4k.tensor("token_embd.weight").type, 6u);
  EXPECT_EQ(q4k.u32("general.file_type"), 15u);
}

TEST(Gguf, MixtralExpertsAreStacked) {
  ScratchDir d;
  const auto f = export_gguf("mixtral", GgufType::kF32, d);
  EXPECT_EQ(f.tensor("blk.0.ffn_gate_exps.weight").ne, (std::vector<int64_t>{64, 64, 4}));
  EXPECT_EQ(f.tensor("blk.0.ffn_down_exps.weight").ne, (std::vector<int64_t>{64, 64, 4}));
  EXPECT_EQ(f.tensor("blk.1.ffn_gate_inp.weight").type, 0u);
  EXPECT_EQ(f.u32("llama.expert_count"), 4u);
  EXPECT_EQ(f.u32("llama.expert_used_count"), 2u);
}

TEST(Gguf, Qwen3AndPhi3Tensors) {
  ScratchDir d1, d2;
  const auto q3 = export_gguf("qwen3", GgufType::kBF16, d1);
  EXPECT_EQ(q3.tensor("blk.0.attn_q_norm.weight").ne, (std::vector<int64_t>{8}));
  EXPECT_EQ(q3.tensor("blk.0.attn_q.weight").type, 30u);
  EXPECT_FALSE(q3.kv.count("qwen3.rope.dimension_count"));
  const auto phi = export_gguf("phi3", GgufType::kF16, d2);
  EXPECT_EQ(phi.tensor("blk.0.attn_qkv.weight").ne, (std::vector<int64_t>{64, 64 + 2 * 16}));
  EXPECT_EQ(phi.tensor("blk.0.ffn_up.weight").ne, (std::vector<int64_t>{64, 256}));
  EXPECT_EQ(phi.u32("phi3.attention.sliding_window"), 0u);
  EXPECT_EQ(phi.u32("phi3.rope.scaling.original_context_length"), 128u);
  EXPECT_EQ(phi.kv_at("tokenizer.ggml.tokens").count, 300u);  // padded to the embedding rows
}

TEST(Gguf, QkRowsArePermutedLikeConvert) {
  // new row h*hd + 2i + j = old row h*hd + j*hd/2 + i (convert's LlamaModel.permute).
  SourceView v;
  v.file = 0;
  v.dtype = DType::F32;
  v.shape = {16, 3};
  const SourceView p = permute_for_llama_rope(v, 2);
  ASSERT_EQ(p.shape, (std::vector<uint64_t>{2, 4, 2, 3}));
  const uint64_t hd = 8;
  for (uint64_t h = 0; h < 2; ++h)
    for (uint64_t i = 0; i < 4; ++i)
      for (uint64_t j = 0; j < 2; ++j) {
        const int64_t off = static_cast<int64_t>(h) * p.strides[0] + static_cast<int64_t>(i) * p.strides[1] +
                            static_cast<int64_t>(j) * p.strides[2];
        EXPECT_EQ(off, static_cast<int64_t>((h * hd + j * hd / 2 + i) * 3));
      }
}

TEST(Gguf, RefusesWhatLlamaCppCannotRun) {
  Checkpoint ds = open_checkpoint(testdata("deepseek-v3"));
  try {
    plan_gguf(ds, test::byte_level_vocab(1, 2), {});
    FAIL() << "an unsupported architecture was exported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUnsupported);
  }
  Checkpoint ck = open_checkpoint(testdata("llama"));
  GgufVocab big = test::byte_level_vocab(1, 2);
  for (int i = 0; i < 10; ++i) {
    big.tokens.push_back("extra" + std::to_string(i));
    big.types.push_back(1);
  }
  try {
    plan_gguf(ck, big, {});
    FAIL() << "a vocabulary larger than the embedding was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("token_embd"), std::string::npos);
  }
  GgufVocab dup = test::byte_level_vocab(1, 2);
  dup.tokens[5] = dup.tokens[6];
  EXPECT_THROW(plan_gguf(ck, dup, {}), Error);
  GgufOptions q40;
  q40.type = GgufType::kQ4_0;
  Checkpoint phi = open_checkpoint(testdata("phi3"));
  EXPECT_NO_THROW(plan_gguf(phi, test::byte_level_vocab(1, 2), q40));
}

TEST(Gguf, SplitFilesAsGgufSplit) {
  // gguf-py GGUFWriter with split_max_size: a new file when the next tensor would pass the limit,
  // names <stem>-0000i-of-0000n.gguf, split.no (u16) / split.count (u16) / split.tensors.count
  // (i32) in every file, the model's metadata only in the first; the tensors in order across files.
  Checkpoint ck = open_checkpoint(testdata("llama"));
  GgufOptions o;
  o.type = GgufType::kF32;
  o.file_name = "tiny.gguf";
  Plan whole = plan_gguf(ck, test::byte_level_vocab(1, 2), o);
  o.split_max_bytes = 70000;  // token_embd and output are 65536 bytes each
  Plan plan = plan_gguf(ck, test::byte_level_vocab(1, 2), o);
  ASSERT_GT(plan.files.size(), 2u);
  ScratchDir d;
  ExecOptions e;
  e.threads = 2;
  e.file_destination = true;
  execute(plan, d / "tiny.gguf", e);
  EXPECT_FALSE(std::filesystem::exists(d / "tiny.gguf"));
  EXPECT_TRUE(std::filesystem::exists(d / "tiny.gguf.ckpt-manifest.json"));
  std::vector<std::string> names;
  const size_t n = plan.files.size();
  for (size_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "tiny-%05zu-of-%05zu.gguf", i + 1, n);
    const auto f = test::read_gguf(d / name);
    uint64_t bytes = 0;
    for (const auto& t : f.tensors) {
      names.push_back(t.name);
      bytes += test::ggml_tensor_bytes(t.type, t.ne);
    }
    EXPECT_TRUE(bytes <= 70000 || f.tensors.size() == 1) << name;
    EXPECT_EQ(f.kv_at("split.no").type, 2u);  // u16
    EXPECT_EQ(f.kv_at("split.no").raw, (std::vector<uint8_t>{static_cast<uint8_t>(i), 0}));
    EXPECT_EQ(f.kv_at("split.count").raw, (std::vector<uint8_t>{static_cast<uint8_t>(n), 0}));
    EXPECT_EQ(f.kv_at("split.tensors.count").type, 5u);  // i32
    const auto total = static_cast<uint8_t>(whole.files[0].tensors.size());
    EXPECT_EQ(f.kv_at("split.tensors.count").raw, (std::vector<uint8_t>{total, 0, 0, 0}));
    EXPECT_EQ(f.kv.count("general.architecture"), i == 0 ? 1u : 0u) << name;
    ASSERT_GE(f.key_order.size(), 3u);
    EXPECT_EQ(std::vector<std::string>(f.key_order.end() - 3, f.key_order.end()),
              (std::vector<std::string>{"split.no", "split.count", "split.tensors.count"}));
    if (i > 0) {
      EXPECT_EQ(f.key_order.size(), 3u) << name;
    }
  }
  std::vector<std::string> whole_names;
  for (const auto& t : whole.files[0].tensors) whole_names.push_back(t.name);
  EXPECT_EQ(names, whole_names);
}

TEST(Gguf, SameBytesAtAnyThreadCount) {
  Checkpoint ck = open_checkpoint(testdata("mixtral"));
  GgufOptions o;
  o.type = GgufType::kQ4_K_M;
  ScratchDir d;
  for (int threads : {1, 3}) {
    Plan plan = plan_gguf(ck, test::byte_level_vocab(1, 2), o);
    ExecOptions e;
    e.threads = threads;
    execute(plan, d / ("t" + std::to_string(threads)), e);
  }
  EXPECT_EQ(read_file_bytes(d / "t1/model.gguf"), read_file_bytes(d / "t3/model.gguf"));
}

// The 4 x 512 float32 tensor the block-producer tests write at offset 0 of a file of their own.
SourceView f32_rows_view() {
  SourceView v;
  v.file = 0;
  v.dtype = DType::F32;
  v.shape = {4, 512};
  return v;
}

TEST(Gguf, BlockProducerGivesTheSameBytesForAnyRangeCut) {
  // The executor cuts chunks at 1 MiB, inside blocks: every cut must give the whole's bytes.
  ScratchDir d;
  std::vector<uint8_t> raw(4 * 512 * 4);
  for (size_t i = 0; i < raw.size() / 4; ++i) {
    const float x = std::sin(static_cast<float>(i) * 0.37f) * static_cast<float>(1 + i % 13);
    std::memcpy(raw.data() + 4 * i, &x, 4);
  }
  write_file_bytes(d / "w.bin", raw);
  const SourceView v = f32_rows_view();
  SourceReader src({d / "w.bin"});
  for (auto type : {ops::GgmlType::Q4_K, ops::GgmlType::Q6_K, ops::GgmlType::Q8_0, ops::GgmlType::Q5_0}) {
    GgmlBlockProducer p({v}, 512, type, "t.gguf", "w");
    std::vector<uint8_t> whole(p.nbytes()), cut(p.nbytes());
    p.produce(src, 0, whole.size(), whole.data());
    for (uint64_t at = 0; at < cut.size();) {
      const uint64_t n = std::min<uint64_t>(cut.size() - at, 97);
      p.produce(src, at, n, cut.data() + at);
      at += n;
    }
    EXPECT_EQ(cut, whole) << ops::ggml_type_info(type).name;
  }
}

}  // namespace

TEST(Gguf, BlockProducerRefusesEveryKindOfNonFiniteAnywhere) {
  // The check runs 16 floats at a time, 4 vectors of 4: an Inf or a NaN (quiet, signalling,
  // negative) is found in any lane, at the first and last element of a batch and between.
  ScratchDir d;
  const uint32_t bad[] = {0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x7F800001u, 0xFFFFFFFFu};
  // The largest finite values, either sign, and a subnormal pass in every lane.
  const uint32_t edge[] = {0x7F7FFFFFu, 0xFF7FFFFFu, 0x00000001u, 0x807FFFFFu};
  {
    std::vector<uint8_t> raw(4 * 512 * 4);
    for (size_t i = 0; i < raw.size() / 4; ++i) std::memcpy(raw.data() + 4 * i, &edge[i % 4], 4);
    write_file_bytes(d / "finite.bin", raw);
    const SourceView v = f32_rows_view();
    SourceReader src({d / "finite.bin"});
    GgmlBlockProducer p({v}, 512, ops::GgmlType::Q8_0, "t.gguf", "w");
    std::vector<uint8_t> out(p.nbytes());
    EXPECT_NO_THROW(p.produce(src, 0, out.size(), out.data()));
  }
  int k = 0;
  for (uint64_t at : {uint64_t{0}, uint64_t{15}, uint64_t{16}, uint64_t{1000}, uint64_t{4 * 512 - 1}})
    for (uint32_t b : bad) {
      std::vector<uint8_t> raw(4 * 512 * 4);
      for (size_t i = 0; i < raw.size() / 4; ++i) {
        const float x = 3.0e38f * std::sin(static_cast<float>(i));  // finite, near the largest
        std::memcpy(raw.data() + 4 * i, &x, 4);
      }
      std::memcpy(raw.data() + 4 * at, &b, 4);
      const std::string path = d / ("w" + std::to_string(k++) + ".bin");
      write_file_bytes(path, raw);
      const SourceView v = f32_rows_view();
      SourceReader src({path});
      GgmlBlockProducer p({v}, 512, ops::GgmlType::Q8_0, "t.gguf", "w");
      std::vector<uint8_t> out(p.nbytes());
      try {
        p.produce(src, 0, out.size(), out.data());
        ADD_FAILURE() << "accepted 0x" << std::hex << b << " at " << std::dec << at;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("element " + std::to_string(at) + " is not finite"), std::string::npos) << e.what();
      }
    }
}
