#include "validate_fixtures.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "checkpoint/checkpoint.h"
#include "commands/hf_layout.h"
#include "commands/marlin.h"
#include "commands/quantize.h"
#include "core/file_io.h"
#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "plan/executor.h"
#include "plan/plan.h"
#include "quantize_run.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace ckpt::test {

namespace {

// Bytes held in memory, produced as given.
class BytesProducer : public Producer {
 public:
  explicit BytesProducer(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  uint64_t nbytes() const override { return bytes_.size(); }
  void produce(const SourceReader&, uint64_t begin, uint64_t n, uint8_t* out) const override {
    std::copy(bytes_.begin() + begin, bytes_.begin() + begin + n, out);
  }
  ojson describe() const override { return "fixture bytes"; }

 private:
  std::vector<uint8_t> bytes_;
};

void put_float(std::vector<uint8_t>& out, DType t, float v) {
  auto put = [&](uint64_t bits, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  };
  switch (t) {
    case DType::F32: put(ops::f32_bits(v), 4); break;
    case DType::F16: put(ops::f32_to_f16(v), 2); break;
    case DType::BF16: put(ops::f32_to_bf16(v), 2); break;
    case DType::F8_E4M3: put(ops::f32_to_e4m3fn(v), 1); break;
    default: throw std::logic_error("fixture dtype");
  }
}

uint64_t numel(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

constexpr uint64_t kBlock = 32;

}  // namespace

FixtureTensor float_tensor(const std::string& name, DType dtype, std::vector<uint64_t> shape, const std::vector<float>& values) {
  FixtureTensor t{name, dtype, std::move(shape), {}};
  for (float v : values) put_float(t.bytes, dtype, v);
  return t;
}

FixtureTensor random_tensor(const std::string& name, DType dtype, std::vector<uint64_t> shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f), fp8(-448.0f, 448.0f);
  std::vector<float> v(numel(shape));
  for (auto& x : v) x = dtype == DType::F8_E4M3 ? fp8(rng) : dist(rng);
  return float_tensor(name, dtype, std::move(shape), v);
}

std::vector<FixtureTensor> llama_fixture(FixtureQuant quant, uint64_t tp) {
  const uint64_t h = 64, inter = 128, vocab = 256, head_dim = 8, heads = 8, kv = 2;
  std::vector<FixtureTensor> out;
  uint64_t seed = 1;
  out.push_back(random_tensor("model.embed_tokens.weight", DType::BF16, {vocab / tp, h}, seed++));
  out.push_back(float_tensor("model.norm.weight", DType::BF16, {h}, std::vector<float>(h, 1.0f)));
  out.push_back(random_tensor("lm_head.weight", DType::BF16, {vocab / tp, h}, seed++));
  struct Lin {
    const char* name;
    uint64_t n, k;
  };
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    out.push_back(float_tensor(p + "input_layernorm.weight", DType::BF16, {h}, std::vector<float>(h, 1.0f)));
    out.push_back(float_tensor(p + "post_attention_layernorm.weight", DType::BF16, {h}, std::vector<float>(h, 1.0f)));
    for (Lin l : {Lin{"self_attn.q_proj", heads * head_dim / tp, h}, Lin{"self_attn.k_proj", kv * head_dim / tp, h},
                  Lin{"self_attn.v_proj", kv * head_dim / tp, h}, Lin{"self_attn.o_proj", h, heads * head_dim / tp},
                  Lin{"mlp.gate_proj", inter / tp, h}, Lin{"mlp.up_proj", inter / tp, h}, Lin{"mlp.down_proj", h, inter / tp}}) {
      const std::string w = p + l.name + ".weight";
      if (quant == FixtureQuant::kNone) {
        out.push_back(random_tensor(w, DType::BF16, {l.n, l.k}, seed++));
        continue;
      }
      out.push_back(random_tensor(w, DType::F8_E4M3, {l.n, l.k}, seed++));
      const float s = 0.05f / 448.0f;
      switch (quant) {
        case FixtureQuant::kFp8Tensor:
          out.push_back(float_tensor(p + l.name + ".weight_scale", DType::F32, {}, {s}));
          break;
        case FixtureQuant::kFp8Channel: {
          std::vector<float> v(l.n);
          for (uint64_t i = 0; i < l.n; ++i) v[i] = s * (1 + 0.01f * i);
          out.push_back(float_tensor(p + l.name + ".weight_scale", DType::BF16, {l.n, 1}, v));
          break;
        }
        case FixtureQuant::kFp8Block: {
          const uint64_t bn = (l.n + kBlock - 1) / kBlock, bk = (l.k + kBlock - 1) / kBlock;
          std::vector<float> v(bn * bk);
          for (uint64_t i = 0; i < v.size(); ++i) v[i] = s * (1 + 0.1f * i);
          out.push_back(float_tensor(p + l.name + ".weight_scale_inv", DType::F32, {bn, bk}, v));
          break;
        }
        case FixtureQuant::kNone: break;
      }
    }
  }
  return out;
}

ojson llama_fixture_config(FixtureQuant quant) {
  ojson c = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},  {"dtype", "bfloat16"},
             {"hidden_size", 64},                     {"intermediate_size", 128}, {"vocab_size", 256},
             {"num_hidden_layers", 2},                {"num_attention_heads", 8}, {"num_key_value_heads", 2},
             {"head_dim", 8},                         {"max_position_embeddings", 128}};
  switch (quant) {
    case FixtureQuant::kNone: break;
    case FixtureQuant::kFp8Tensor:
      c["quantization_config"] = {{"quant_method", "fp8"}, {"activation_scheme", "dynamic"}, {"ignored_layers", {"lm_head"}}};
      break;
    case FixtureQuant::kFp8Block:
      c["quantization_config"] = {{"quant_method", "fp8"},
                                  {"activation_scheme", "dynamic"},
                                  {"weight_block_size", {kBlock, kBlock}},
                                  {"ignored_layers", {"lm_head"}}};
      break;
    case FixtureQuant::kFp8Channel:
      c["quantization_config"] = {
          {"quant_method", "compressed-tensors"},
          {"format", "float-quantized"},
          {"config_groups",
           {{"group_0",
             {{"targets", {"Linear"}},
              {"weights", {{"num_bits", 8}, {"type", "float"}, {"strategy", "channel"}, {"symmetric", true}, {"dynamic", false}}}}}}},
          {"ignore", {"lm_head"}}};
      break;
  }
  return c;
}

namespace {

OutputFile fixture_file(const std::string& name, const std::vector<FixtureTensor>& tensors, const Metadata& metadata) {
  OutputFile f;
  f.name = name;
  f.container = safetensors_container(metadata);
  for (const auto& t : tensors)
    f.tensors.push_back({t.name, t.dtype, t.shape, std::make_shared<BytesProducer>(t.bytes)});
  return f;
}

void run(Plan& plan, const std::string& dir) {
  plan.command = "fixture";
  plan.finalize();
  ExecOptions o;
  o.threads = 1;
  execute(plan, dir, o);
}

}  // namespace

void write_fixture(const std::string& dir, const std::vector<FixtureTensor>& tensors, const ojson& config,
                   const Metadata& metadata) {
  Plan plan;
  plan.files.push_back(fixture_file("model.safetensors", tensors, metadata));
  plan.extras.push_back({"config.json", config.dump(2) + "\n", std::nullopt});
  run(plan, dir);
}

void write_tp_fixture(const std::string& dir, FixtureQuant quant, uint64_t tp) {
  Plan plan;
  for (uint64_t r = 0; r < tp; ++r) {
    const std::string rank = "rank-" + std::to_string(r) + "/";
    plan.files.push_back(fixture_file(rank + "model.safetensors", llama_fixture(quant, tp),
                                      {{"format", "pt"}, {"tp_size", std::to_string(tp)}, {"tp_rank", std::to_string(r)}}));
    ojson c = llama_fixture_config(quant);
    c["ckpt_parallel"] = {{"tp_size", tp}, {"tp_rank", r},   {"pp_size", 1},          {"pp_stage", 0},
                          {"layer_range", {0, 2}}, {"ep", false}, {"recipe", "llama"}, {"vocab_padding", {{"multiple", 64}}}};
    plan.extras.push_back({rank + "config.json", c.dump(2) + "\n", std::nullopt});
  }
  run(plan, dir);
}

void write_int4_fixture(const std::string& dir, const std::string& format, bool symmetric, int64_t group_size) {
  write_fixture(dir + ".src", llama_fixture(FixtureQuant::kNone), llama_fixture_config(FixtureQuant::kNone));
  QuantizeOptions o;
  o.method = quant::Method::kInt4;
  o.format = format == "gptq" ? quant::Format::kGptq : format == "awq" ? quant::Format::kAwq : quant::Format::kCompressedTensors;
  o.symmetric = symmetric;
  o.group_size = group_size;
  const Checkpoint ck = open_checkpoint(dir + ".src");
  QuantizePlan qp = plan_quantize(ck, o);
  ExecOptions eo;
  eo.protected_paths = {dir + ".src"};
  execute(qp.plan, dir, eo);
}

void write_trained_int4(const std::string& dir, const std::string& format, bool symmetric, int64_t group_size, bool marlin) {
  QuantizeOptions o;
  o.method = quant::Method::kInt4;
  o.format = format == "gptq" ? quant::Format::kGptq : format == "awq" ? quant::Format::kAwq : quant::Format::kCompressedTensors;
  o.symmetric = symmetric;
  o.group_size = group_size;
  o.marlin_layout = marlin;
  quantize_into(testdata("llama-trained"), o, dir);
}

void write_trained_gptq_act_order(const std::string& dir, bool marlin) {
  const std::string gptq = marlin ? dir + ".gptq" : dir;
  write_trained_int4(gptq, "gptq", true, 32, false);
  std::vector<FixtureTensor> ts = read_fixture_tensors(gptq);
  std::mt19937 rng(3);
  for (auto& t : ts) {
    if (t.name.size() < 6 || t.name.compare(t.name.size() - 6, 6, ".g_idx") != 0) continue;
    std::vector<int32_t> g(t.shape[0]);
    std::memcpy(g.data(), t.bytes.data(), t.bytes.size());
    std::shuffle(g.begin(), g.end(), rng);
    std::memcpy(t.bytes.data(), g.data(), t.bytes.size());
  }
  ojson config = ojson::parse(read_text_file(gptq + "/config.json"));
  config["quantization_config"]["desc_act"] = true;
  rewrite_fixture(gptq, ts, config);
  if (!marlin) return;
  ExecOptions eo;
  eo.protected_paths = {gptq};
  execute(plan_marlin(open_checkpoint(gptq), MarlinOptions{}).plan, dir, eo);
}

std::vector<FixtureTensor> read_fixture_tensors(const std::string& dir) {
  const Checkpoint ck = open_checkpoint(dir);
  std::vector<FixtureTensor> out;
  for (const auto& t : ck.tensors) {
    FixtureTensor f{t.name, t.dtype(), t.shape(), std::vector<uint8_t>(t.nbytes())};
    File file = File::open_read(ck.files[t.view.file].path);
    if (!f.bytes.empty()) file.pread_exact(f.bytes.data(), f.bytes.size(), t.view.offset);
    out.push_back(std::move(f));
  }
  return out;
}

void rewrite_fixture(const std::string& dir, const std::vector<FixtureTensor>& tensors, const ojson& config) {
  const std::string next = dir + ".rewritten";
  write_fixture(next, tensors, config);
  fs::remove(next + "/ckpt-manifest.json");
  fs::remove_all(dir);
  fs::rename(next, dir);
}

std::unique_ptr<CpuValidation> run_cpu(const std::string& dir) {
  auto o = std::make_unique<CpuValidation>();
  o->prepared = validate::run_cpu_phases(dir, o->report, {});
  return o;
}

void flip_tensor_byte(const std::string& file, const std::string& tensor, uint64_t offset) {
  File f = File::open_read(file);
  SafetensorsHeader h = read_safetensors_header(f);
  for (const auto& t : h.tensors) {
    if (t.name != tensor) continue;
    std::vector<uint8_t> bytes = read_file_bytes(file);
    bytes.at(h.data_start() + t.begin + offset) ^= 0x10;
    fs::remove(file);
    write_file_bytes(file, bytes);
    return;
  }
  throw std::logic_error("flip_tensor_byte: no tensor " + tensor);
}

}  // namespace ckpt::test
