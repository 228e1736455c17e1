// ckpt shard / merge: every rank of every testdata architecture at tp 1, 2, 4, 8 holds exactly
// the slices vLLM's rules give, computed here independently (plain row/column index arithmetic
// on the source bytes, from a role table written out in this file, not from the recipes or
// tp_split), and merge gives the source back bit for bit. Plus --pp, --ep, quantized (FP8
// block, GPTQ) checkpoints, and the refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "checkpoint/checkpoint.h"
#include "commands/merge.h"
#include "commands/shard.h"
#include "commands/tp_split.h"
#include "core/error.h"
#include "core/file_io.h"
#include "plan/executor.h"
#include "test_support.h"

using namespace ckpt;
using ckpt::test::ScratchDir;
using ckpt::test::testdata;

namespace {

// ---- the reference: which source rows / columns a rank holds ----------------------------------

enum class Ref { kWhole, kColumn, kRow, kVocab, kQ, kKv, kQkv, kGateUp };

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
bool has(const std::string& s, const std::string& t) { return s.find(t) != std::string::npos; }

// vLLM's layer classes for the HF names of the testdata families (spec §1.2).
Ref reference_role(const std::string& name) {
  if (has(name, "embed_tokens") || has(name, "lm_head")) return Ref::kVocab;
  if (has(name, "layernorm") || has(name, "norm.weight") || has(name, "q_a_proj") || has(name, "kv_a_proj") ||
      has(name, ".gate.") || has(name, "q_norm") || has(name, "k_norm"))
    return Ref::kWhole;
  if (has(name, "qkv_proj")) return Ref::kQkv;
  if (has(name, "gate_up_proj")) return Ref::kGateUp;
  if (has(name, "q_proj") || has(name, "q_b_proj") || has(name, "kv_b_proj")) return Ref::kQ;
  if (has(name, "k_proj") || has(name, "v_proj")) return Ref::kKv;
  if (has(name, "o_proj") || has(name, "down_proj") || has(name, ".w2.")) return Ref::kRow;
  if (has(name, "gate_proj") || has(name, "up_proj") || has(name, ".w1.") || has(name, ".w3.")) return Ref::kColumn;
  ADD_FAILURE() << "reference has no role for " << name;
  return Ref::kWhole;
}

// Source indices [first, first + count) appended to `out`.
void take(std::vector<int64_t>& out, uint64_t first, uint64_t count) {
  for (uint64_t i = 0; i < count; ++i) out.push_back(static_cast<int64_t>(first + i));
}

// Rows of a head-split block of `heads` heads of `d` rows starting at `base`. With more ranks
// than heads, rank r gets head r*heads/tp (the formula).
void take_heads(std::vector<int64_t>& out, uint64_t base, uint64_t heads, uint64_t d, uint64_t tp, uint64_t r) {
  if (tp <= heads) take(out, base + r * (heads / tp) * d, heads / tp * d);
  else take(out, base + r * heads / tp * d, d);
}

// The source indices along the split dimension that rank r holds, in order; -1 = a zero row.
std::vector<int64_t> reference_indices(Ref role, uint64_t n, uint64_t tp, uint64_t r, uint64_t nh, uint64_t nkv) {
  std::vector<int64_t> out;
  switch (role) {
    case Ref::kWhole: take(out, 0, n); break;
    case Ref::kColumn:
    case Ref::kRow: take(out, r * n / tp, n / tp); break;
    case Ref::kQ: take_heads(out, 0, nh, n / nh, tp, r); break;
    case Ref::kKv: take_heads(out, 0, nkv, n / nkv, tp, r); break;
    case Ref::kQkv: {
      uint64_t d = n / (nh + 2 * nkv);
      take_heads(out, 0, nh, d, tp, r);
      take_heads(out, nh * d, nkv, d, tp, r);
      take_heads(out, (nh + nkv) * d, nkv, d, tp, r);
      break;
    }
    case Ref::kGateUp:
      take(out, r * (n / 2) / tp, n / 2 / tp);
      take(out, n / 2 + r * (n / 2) / tp, n / 2 / tp);
      break;
    case Ref::kVocab: {
      uint64_t padded = (n + 63) / 64 * 64, per = padded / tp;
      for (uint64_t i = r * per; i < (r + 1) * per; ++i) out.push_back(i < n ? static_cast<int64_t>(i) : -1);
      break;
    }
  }
  return out;
}

// ---- reading tensors -----------------------------------------------------------------------------

struct Bytes {
  DType dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> data;
};

std::map<std::string, Bytes> read_all(const std::string& dir) {
  Checkpoint ck = open_checkpoint(dir);
  std::map<std::string, Bytes> out;
  for (const auto& t : ck.tensors) {
    EXPECT_TRUE(t.view.is_contiguous()) << t.name;
    Bytes b{t.dtype(), t.shape(), std::vector<uint8_t>(t.nbytes())};
    File f = File::open_read(ck.files[t.view.file].path);
    if (!b.data.empty()) f.pread_exact(b.data.data(), b.data.size(), t.view.offset);
    out[t.name] = std::move(b);
  }
  return out;
}

// The expected slice: rows (dim 0) or columns (dim 1) `idx` of `src`, -1 giving zeros.
Bytes select(const Bytes& src, size_t dim, const std::vector<int64_t>& idx) {
  const uint64_t esz = dtype_bits(src.dtype) / 8;
  Bytes out{src.dtype, src.shape, {}};
  out.shape[dim] = idx.size();
  uint64_t inner = esz;
  for (size_t d = dim + 1; d < src.shape.size(); ++d) inner *= src.shape[d];
  uint64_t outer = 1;
  for (size_t d = 0; d < dim; ++d) outer *= src.shape[d];
  for (uint64_t o = 0; o < outer; ++o)
    for (int64_t i : idx) {
      if (i < 0) {
        out.data.insert(out.data.end(), inner, 0);
        continue;
      }
      const uint8_t* p = src.data.data() + (o * src.shape[dim] + static_cast<uint64_t>(i)) * inner;
      out.data.insert(out.data.end(), p, p + inner);
    }
  return out;
}

ExecReport run(const Plan& plan, const std::string& dst) {
  ExecOptions eo;
  eo.threads = 2;
  return execute(plan, dst, eo);
}

ojson config_of(const std::string& dir) { return parse_strict_json(read_text_file(dir + "/config.json")).value; }

std::map<std::string, std::string> metadata_of(const std::string& file) {
  Checkpoint ck = open_checkpoint(file);
  std::map<std::string, std::string> m;
  if (ck.files[0].metadata)
    for (const auto& [k, v] : *ck.files[0].metadata) m[k] = v;
  return m;
}

// Tensor bytes always; whole files too when the source was written by Python safetensors (the
// writer is reference-exact, so a single-file source comes back byte for byte).
void expect_merge_gives_back(const std::string& sharded, const std::string& source_dir, const ScratchDir& s,
                             const std::string& label, bool same_file = true) {
  const std::string out = s / ("merged-" + label);
  run(plan_merge(sharded, {}), out);
  auto src = read_all(source_dir);
  auto back = read_all(out);
  ASSERT_EQ(src.size(), back.size()) << label;
  for (const auto& [name, b] : src) {
    ASSERT_TRUE(back.count(name)) << label << " " << name;
    EXPECT_EQ(back[name].shape, b.shape) << label << " " << name;
    EXPECT_TRUE(back[name].data == b.data) << label << " " << name;
  }
  if (same_file && std::filesystem::exists(source_dir + "/model.safetensors"))
    EXPECT_TRUE(ckpt::test::read_file_bytes(out + "/model.safetensors") ==
                ckpt::test::read_file_bytes(source_dir + "/model.safetensors"))
        << label << ": merged file differs from the source file";
  EXPECT_EQ(read_text_file(out + "/config.json"), read_text_file(source_dir + "/config.json")) << label;
}

const char* kArchitectures[] = {"llama", "llama-sharded", "llama-tied", "mistral", "qwen2", "qwen3",
                                "mixtral", "phi3", "qwen3-moe", "deepseek-v3"};

}  // namespace

TEST(TpSplit, HeadsReplicationAndRefusals) {
  // GQA: 2 KV heads of 8 rows at tp 8: ranks {0..3} -> head 0, {4..7} -> head 1.
  for (uint64_t r = 0; r < 8; ++r) {
    AxisSplit s = split_axis(16, kv_heads_axis(2), 8, r);
    ASSERT_TRUE(s.refusal.empty());
    EXPECT_EQ(s.ranges, (std::vector<AxisRange>{{r / 4 * 8, 8}}));
  }
  EXPECT_NE(split_axis(64, q_heads_axis(8), 3, 0).refusal.find("num_attention_heads 8 is not divisible by --tp 3"),
            std::string::npos);
  EXPECT_NE(split_axis(64, q_heads_axis(8), 16, 0).refusal.find("smaller than --tp 16"), std::string::npos);
  EXPECT_NE(split_axis(24, kv_heads_axis(3), 4, 0).refusal.find("larger than num_key_value_heads 3 but not a multiple"),
            std::string::npos);
  EXPECT_NE(split_axis(64, plain_axis(), 2, 1, 64).refusal.find("quantization unit 64"), std::string::npos);
  EXPECT_EQ(unsplit_axis_length(32, fused_qkv_axis(8, 2), 4), 96u);  // Phi-3 qkv at tp 4: q 16 + k 8 + v 8
  EXPECT_EQ(unsplit_axis_length(8, kv_heads_axis(2), 8), 16u);
}

TEST(TpSplit, VocabPpEp) {
  VocabSplit v = split_vocab(32001, 64, 8);
  EXPECT_EQ(v.padded, 32064u);
  EXPECT_EQ(v.per_rank, 4008u);
  EXPECT_EQ(v.real_rows(7, 32001), (AxisRange{28056, 3945}));
  EXPECT_FALSE(split_vocab(32000, 64, 3).refusal.empty());
  // vLLM get_pp_indices: 30 layers over 4 stages -> 7, 8, 8, 7.
  auto parts = pp_layer_partition(30, 4);
  std::vector<uint64_t> counts;
  for (const auto& p : parts) counts.push_back(p.length);
  EXPECT_EQ(counts, (std::vector<uint64_t>{7, 8, 8, 7}));
  EXPECT_EQ(parts[3].begin, 23u);
  EXPECT_EQ(ep_experts(10, 4, 0), (AxisRange{0, 3}));
  EXPECT_EQ(ep_experts(10, 4, 3), (AxisRange{8, 2}));
}

TEST(Shard, EveryArchitectureEveryDegreeMatchesTheReferenceAndMergesBack) {
  for (const char* arch : kArchitectures) {
    const std::string src_dir = testdata(arch);
    Checkpoint ck = open_checkpoint(src_dir);
    const uint64_t nh = (*ck.config)["num_attention_heads"].get<uint64_t>();
    const uint64_t nkv = (*ck.config)["num_key_value_heads"].get<uint64_t>();
    auto src = read_all(src_dir);
    for (uint64_t tp : {1, 2, 4, 8}) {
      ScratchDir s;
      ShardOptions o;
      o.tp = tp;
      run(plan_shard(ck, Recipe::for_checkpoint(ck), o), s / "out");
      for (uint64_t r = 0; r < tp; ++r) {
        const std::string label = std::string(arch) + " tp" + std::to_string(tp) + " rank" + std::to_string(r);
        const std::string dir = s / ("out/rank-" + std::to_string(r));
        auto got = read_all(dir);
        EXPECT_EQ(got.size(), src.size()) << label;
        for (const auto& [name, b] : src) {
          ASSERT_TRUE(got.count(name)) << label << " lacks " << name;
          Ref role = reference_role(name);
          if (tp == 1 && role != Ref::kVocab) role = Ref::kWhole;
          const size_t dim = role == Ref::kRow && b.shape.size() == 2 ? 1 : 0;
          Bytes want = role == Ref::kWhole || (role == Ref::kRow && b.shape.size() == 1)
                           ? b
                           : select(b, dim, reference_indices(role, b.shape[dim], tp, r, nh, nkv));
          EXPECT_EQ(got[name].shape, want.shape) << label << " " << name;
          EXPECT_TRUE(got[name].data == want.data) << label << " " << name;
        }
        // The rank's place is in every file's metadata and in config.json.
        auto meta = metadata_of(dir);
        EXPECT_EQ(meta["format"], "pt");
        EXPECT_EQ(meta["tp_size"], std::to_string(tp));
        EXPECT_EQ(meta["tp_rank"], std::to_string(r));
        ojson block = config_of(dir)["ckpt_parallel"];
        EXPECT_EQ(block["tp_size"], tp);
        EXPECT_EQ(block["tp_rank"], r);
        EXPECT_EQ(block["layer_range"], ojson::array({0, 2}));
        EXPECT_TRUE(std::filesystem::exists(dir + "/tokenizer.json")) << label;
      }
      expect_merge_gives_back(s / "out", src_dir, s, std::string(arch) + "-tp" + std::to_string(tp));
    }
  }
}

TEST(Shard, PipelineStagesFollowVllmPartition) {
  Checkpoint ck = open_checkpoint(testdata("llama"));
  ScratchDir s;
  ShardOptions o;
  o.tp = 2;
  o.pp = 2;
  run(plan_shard(ck, Recipe::for_checkpoint(ck), o), s / "out");
  for (uint64_t r = 0; r < 2; ++r) {
    auto first = read_all(s / ("out/stage-0/rank-" + std::to_string(r)));
    auto last = read_all(s / ("out/stage-1/rank-" + std::to_string(r)));
    EXPECT_TRUE(first.count("model.embed_tokens.weight"));
    EXPECT_TRUE(first.count("model.layers.0.mlp.up_proj.weight"));
    EXPECT_FALSE(first.count("model.layers.1.mlp.up_proj.weight"));
    EXPECT_FALSE(first.count("lm_head.weight"));
    EXPECT_TRUE(last.count("lm_head.weight"));
    EXPECT_TRUE(last.count("model.norm.weight"));
    EXPECT_TRUE(last.count("model.layers.1.self_attn.q_proj.weight"));
    EXPECT_FALSE(last.count("model.layers.0.self_attn.q_proj.weight"));
    EXPECT_EQ(first.size() + last.size(), 21u);
  }
  EXPECT_EQ(config_of(s / "out/stage-1/rank-1")["ckpt_parallel"]["layer_range"], ojson::array({1, 2}));
  auto meta = metadata_of(s / "out/stage-1/rank-0");
  EXPECT_EQ(meta["pp_size"], "2");
  EXPECT_EQ(meta["pp_stage"], "1");
  expect_merge_gives_back(s / "out", testdata("llama"), s, "pp");
}

TEST(Shard, ExpertParallelDistributesWholeExperts) {
  for (const char* arch : {"mixtral", "qwen3-moe", "deepseek-v3"}) {
    Checkpoint ck = open_checkpoint(testdata(arch));
    ScratchDir s;
    ShardOptions o;
    o.tp = 2;
    o.ep = true;
    run(plan_shard(ck, Recipe::for_checkpoint(ck), o), s / "out");
    auto src = read_all(testdata(arch));
    for (uint64_t r = 0; r < 2; ++r) {
      auto got = read_all(s / ("out/rank-" + std::to_string(r)));
      for (const auto& [name, b] : src) {
        auto at = name.find("experts.");
        if (at == std::string::npos || has(name, "shared_experts")) continue;
        const uint64_t e = std::stoull(name.substr(at + 8));
        const bool mine = e / 2 == r;  // 4 experts over 2 ranks: {0, 1}, {2, 3}
        ASSERT_EQ(got.count(name), mine ? 1u : 0u) << arch << " rank " << r << " " << name;
        if (mine) EXPECT_TRUE(got[name].data == b.data) << name;
      }
      // Attention is still tensor-parallel.
      EXPECT_EQ(got["model.layers.0.self_attn.o_proj.weight"].shape, (std::vector<uint64_t>{64, 32})) << arch;
    }
    EXPECT_EQ(config_of(s / "out/rank-0")["ckpt_parallel"]["ep"], true);
    expect_merge_gives_back(s / "out", testdata(arch), s, std::string("ep-") + arch);
  }
}

TEST(Shard, RefusesInvalidDegreesNamingTheReasonAndValidDegrees) {
  Checkpoint ck = open_checkpoint(testdata("llama"));
  Recipe recipe = Recipe::for_checkpoint(ck);
  for (uint64_t tp : {3, 16}) {
    ShardOptions o;
    o.tp = tp;
    try {
      plan_shard(ck, recipe, o);
      FAIL() << "tp " << tp << " accepted";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.code(), Errc::kInvalidArgument);
      EXPECT_NE(msg.find("num_attention_heads 8"), std::string::npos) << msg;
      EXPECT_NE(msg.find("valid --tp for this model: 1, 2, 4, 8"), std::string::npos) << msg;
    }
  }
  ShardOptions ep;
  ep.tp = 8;
  ep.ep = true;
  Checkpoint moe = open_checkpoint(testdata("mixtral"));
  try {
    plan_shard(moe, Recipe::for_checkpoint(moe), ep);
    FAIL() << "--ep with 8 ranks and 4 experts accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only 4 experts"), std::string::npos) << e.what();
  }
}

// ---- quantized checkpoints -------------------------------------------------------------------------

namespace {

// A Llama-shaped checkpoint whose Linear layers are quantized: FP8 with block scales
// (weight_scale_inv, block 8x8 so the tiny shapes exercise the rules) or GPTQ (qweight, qzeros,
// scales, g_idx with group 8). Values are position-dependent so every misplaced byte shows.
void write_quantized_llama(const std::string& dir, bool gptq, uint64_t block) {
  std::filesystem::create_directories(dir);
  ojson config = parse_strict_json(read_text_file(testdata("llama/config.json"))).value;
  if (gptq) config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 8}, {"desc_act", false}};
  else config["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {block, block}}};
  write_text_file(dir + "/config.json", config.dump(2) + "\n");
  std::string header = "{";
  std::vector<uint8_t> data;
  uint8_t counter = 1;
  auto add = [&](const std::string& name, const char* dtype, std::vector<uint64_t> shape, unsigned esz) {
    uint64_t n = esz;
    for (auto d : shape) n *= d;
    ojson sh = shape;
    header += (header.size() > 1 ? "," : "") + ojson(name).dump() + ":{\"dtype\":\"" + dtype + "\",\"shape\":" + sh.dump() +
              ",\"data_offsets\":[" + std::to_string(data.size()) + "," + std::to_string(data.size() + n) + "]}";
    for (uint64_t i = 0; i < n; ++i) data.push_back(static_cast<uint8_t>(counter * 31 + i * 7 + i / 251));
    ++counter;
  };
  add("model.embed_tokens.weight", "BF16", {256, 64}, 2);
  add("lm_head.weight", "BF16", {256, 64}, 2);
  add("model.norm.weight", "BF16", {64}, 2);
  const std::pair<const char*, std::pair<uint64_t, uint64_t>> linears[] = {
      {"self_attn.q_proj", {64, 64}}, {"self_attn.k_proj", {16, 64}}, {"self_attn.v_proj", {16, 64}},
      {"self_attn.o_proj", {64, 64}}, {"mlp.gate_proj", {128, 64}},   {"mlp.up_proj", {128, 64}},
      {"mlp.down_proj", {64, 128}}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", "BF16", {64}, 2);
    add(p + "post_attention_layernorm.weight", "BF16", {64}, 2);
    for (const auto& [m, nk] : linears) {
      const auto [n, k] = nk;
      if (gptq) {
        add(p + m + ".qweight", "I32", {k / 8, n}, 4);
        add(p + m + ".qzeros", "I32", {k / 8, n / 8}, 4);
        add(p + m + ".scales", "F16", {k / 8, n}, 2);
        add(p + m + ".g_idx", "I32", {k}, 4);
      } else {
        add(p + m + ".weight", "F8_E4M3", {n, k}, 1);
        add(p + m + ".weight_scale_inv", "F32", {n / block, k / block}, 4);
        add(p + m + ".input_scale", "F32", {}, 4);
      }
    }
  }
  header += "}";
  ckpt::test::write_raw_safetensors(dir + "/model.safetensors", header, data);
}

// The reference for a quantized part: which dim it splits along and in what unit (source
// elements per logical row/column), per vLLM's parameter classes (spec §3).
struct QuantRef {
  bool whole;
  size_t dim;
  uint64_t unit;
};
QuantRef quant_reference(const std::string& name, Ref role, uint64_t block) {
  const bool row = role == Ref::kRow;
  if (ends_with(name, ".input_scale")) return {true, 0, 1};
  if (ends_with(name, ".weight_scale_inv")) return {false, row ? 1u : 0u, block};
  if (ends_with(name, ".weight")) return {false, row ? 1u : 0u, 1};
  if (ends_with(name, ".qweight")) return {false, row ? 0u : 1u, row ? 8u : 1u};
  if (ends_with(name, ".qzeros")) return {false, row ? 0u : 1u, 8};
  if (ends_with(name, ".scales")) return {false, row ? 0u : 1u, row ? 8u : 1u};
  if (ends_with(name, ".g_idx")) return {!row, 0, 1};
  ADD_FAILURE() << name;
  return {true, 0, 1};
}

// Logical indices -> indices of a part stored in units of `unit` (each unit-aligned run once).
std::vector<int64_t> in_units(const std::vector<int64_t>& logical, uint64_t unit) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < logical.size(); i += unit) out.push_back(logical[i] / static_cast<int64_t>(unit));
  return out;
}

}  // namespace

TEST(Shard, QuantizedCheckpointsSplitScalesAndPackedPartsAndMergeBack) {
  for (bool gptq : {false, true}) {
    ScratchDir s;
    const uint64_t block = 8;
    write_quantized_llama(s / "src", gptq, block);
    write_text_file(s / "src/tokenizer.json", "{}");
    auto src = read_all(s / "src");
    Checkpoint ck = open_checkpoint(s / "src");
    for (uint64_t tp : {2, 4, 8}) {
      ShardOptions o;
      o.tp = tp;
      const std::string out = s / ("out" + std::to_string(tp));
      run(plan_shard(ck, Recipe::for_checkpoint(ck), o), out);
      for (uint64_t r = 0; r < tp; ++r) {
        auto got = read_all(out + "/rank-" + std::to_string(r));
        for (const auto& [name, b] : src) {
          Ref role = reference_role(name);
          Bytes want = b;
          if (role == Ref::kVocab) {
            want = select(b, 0, reference_indices(role, b.shape[0], tp, r, 8, 2));
          } else if (role != Ref::kWhole) {
            QuantRef q = quant_reference(name, role, block);
            if (!q.whole) {
              const uint64_t logical = b.shape[q.dim] * q.unit;
              want = select(b, q.dim, in_units(reference_indices(role, logical, tp, r, 8, 2), q.unit));
            }
          }
          ASSERT_TRUE(got.count(name)) << name;
          EXPECT_EQ(got[name].shape, want.shape) << "tp" << tp << " rank" << r << " " << name;
          EXPECT_TRUE(got[name].data == want.data) << "tp" << tp << " rank" << r << " " << name;
        }
      }
      expect_merge_gives_back(out, s / "src", s, (gptq ? "gptq" : "fp8") + std::to_string(tp), false);
    }
  }
}

TEST(Shard, RefusesADegreeThatBreaksAQuantizationBlockNamingTheTensor) {
  ScratchDir s;
  write_quantized_llama(s / "src", false, 16);
  Checkpoint ck = open_checkpoint(s / "src");
  ShardOptions o;
  o.tp = 8;  // q_proj: 8 rows per rank, not a 16-row block
  try {
    plan_shard(ck, Recipe::for_checkpoint(ck), o);
    FAIL() << "accepted";
  } catch (const Error& e) {
    std::string msg = e.what();
    // The FP8 weight itself is checked (vLLM's validate_fp8_block_shape), before its scale.
    EXPECT_NE(msg.find("q_proj.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("slice of 8 rows is not a multiple of the 16x16 block"), std::string::npos) << msg;
    // tp 2 and 4 fail too: a rank's 8 rows of KV heads are not a 16-row block.
    EXPECT_NE(msg.find("valid --tp for this model: 1 ["), std::string::npos) << msg;
  }
}

TEST(Merge, RefusesARankFromAnotherShardRun) {
  Checkpoint ck = open_checkpoint(testdata("llama"));
  ScratchDir s;
  ShardOptions o;
  o.tp = 2;
  run(plan_shard(ck, Recipe::for_checkpoint(ck), o), s / "a");
  std::filesystem::rename(s / "a/rank-1", s / "moved");
  std::filesystem::rename(s / "a/rank-0", s / "a/rank-1");
  std::filesystem::rename(s / "moved", s / "a/rank-0");
  try {
    plan_merge(s / "a", {});
    FAIL() << "accepted swapped ranks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not belong at stage 0, rank 0"), std::string::npos) << e.what();
  }
}
