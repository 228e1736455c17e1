// Writes a synthetic Llama-shaped checkpoint (Hugging Face names and shapes, random finite
// weights) for benchmarks: config.json plus model.safetensors or HF shards with an index. Values
// are normally distributed-ish (std ~0.02), never NaN/Inf, so every command can run on them.
//
//   ckpt_make_synthetic OUT_DIR [--layers 22] [--hidden 2048] [--intermediate 5632]
//       [--heads 32] [--kv-heads 4] [--vocab 32000] [--dtype bf16|f32] [--max-shard-size 5GB]
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "commands/hf_layout.h"
#include "core/error.h"
#include "core/sizes.h"
#include "plan/executor.h"
#include "synthetic_weight.h"

using namespace ckpt;

namespace {

// Random finite values from a counter-based generator, so any chunk can be made independently
// (and in parallel) with the same result.
class RandomWeights : public Producer {
 public:
  RandomWeights(DType dtype, uint64_t numel, uint64_t seed) : dtype_(dtype), numel_(numel), seed_(seed) {}
  uint64_t nbytes() const override { return numel_ * dtype_bits(dtype_) / 8; }
  void produce(const SourceReader&, uint64_t begin, uint64_t n, uint8_t* out) const override {
    const unsigned es = dtype_bits(dtype_) / 8;
    for (uint64_t i = begin / es; i < (begin + n) / es; ++i) {
      float v = value(i);
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      if (dtype_ == DType::BF16) {
        uint16_t h = static_cast<uint16_t>(bits >> 16);
        std::memcpy(out + (i * es - begin), &h, 2);
      } else {
        std::memcpy(out + (i * es - begin), &bits, 4);
      }
    }
  }
  ojson describe() const override { return "random"; }

 private:
  float value(uint64_t i) const { return bench::synthetic_weight(i, seed_); }
  DType dtype_;
  uint64_t numel_, seed_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Synthetic Llama-shaped checkpoint for benchmarks"};
  std::string out, dtype_name = "bf16", max_shard = "5GB";
  uint64_t layers = 22, hidden = 2048, inter = 5632, heads = 32, kv_heads = 4, vocab = 32000;
  app.add_option("OUT", out)->required();
  app.add_option("--layers", layers);
  app.add_option("--hidden", hidden);
  app.add_option("--intermediate", inter);
  app.add_option("--heads", heads);
  app.add_option("--kv-heads", kv_heads);
  app.add_option("--vocab", vocab);
  app.add_option("--dtype", dtype_name);
  app.add_option("--max-shard-size", max_shard);
  CLI11_PARSE(app, argc, argv);
  try {
    DType dt = *dtype_from_user_name(dtype_name);
    const uint64_t hd = hidden / heads;
    std::vector<OutputTensor> tensors;
    uint64_t seed = 1;
    auto add = [&](const std::string& name, std::vector<uint64_t> shape) {
      uint64_t n = 1;
      for (auto d : shape) n *= d;
      tensors.push_back({name, dt, shape, std::make_shared<RandomWeights>(dt, n, seed++)});
    };
    add("model.embed_tokens.weight", {vocab, hidden});
    for (uint64_t l = 0; l < layers; ++l) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      add(p + "self_attn.q_proj.weight", {heads * hd, hidden});
      add(p + "self_attn.k_proj.weight", {kv_heads * hd, hidden});
      add(p + "self_attn.v_proj.weight", {kv_heads * hd, hidden});
      add(p + "self_attn.o_proj.weight", {hidden, heads * hd});
      add(p + "mlp.gate_proj.weight", {inter, hidden});
      add(p + "mlp.up_proj.weight", {inter, hidden});
      add(p + "mlp.down_proj.weight", {hidden, inter});
      add(p + "input_layernorm.weight", {hidden});
      add(p + "post_attention_layernorm.weight", {hidden});
    }
    add("model.norm.weight", {hidden});
    add("lm_head.weight", {vocab, hidden});

    Plan plan;
    plan.command = "make_synthetic";
    add_hf_safetensors_files(plan, std::move(tensors), *parse_byte_size(max_shard));
    ojson config = {{"architectures", {"LlamaForCausalLM"}},
                    {"model_type", "llama"},
                    {"hidden_size", hidden},
                    {"intermediate_size", inter},
                    {"num_hidden_layers", layers},
                    {"num_attention_heads", heads},
                    {"num_key_value_heads", kv_heads},
                    {"head_dim", hd},
                    {"vocab_size", vocab},
                    {"rms_norm_eps", 1e-5},
                    {"tie_word_embeddings", false},
                    {"torch_dtype", dt == DType::BF16 ? "bfloat16" : "float32"}};
    plan.extras.push_back({"config.json", config.dump(2) + "\n", std::nullopt});
    plan.finalize();
    ExecOptions o;
    o.force = true;
    ExecReport r = execute(plan, out, o);
    std::printf("%s: %zu tensors, %s\n", out.c_str(), r.tensors, format_bytes(r.tensor_bytes).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt_make_synthetic: %s\n", e.what());
    return 1;
  }
}
