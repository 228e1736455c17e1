// ckpt gguf SRC OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_1|q4_k|q6_k|auto] [--split-max-size 5G]
//     [--name NAME]
#include <algorithm>
#include <filesystem>

#include "commands/gguf.h"
#include "commands/gguf_vocab.h"
#include "common.h"
#include "core/error.h"
#include "core/sizes.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_gguf(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "gguf", "Export one GGUF file for llama.cpp, with the model's tokenizer (Llama, Mistral, Mixtral, Qwen2, Qwen3, Phi-3)");
  struct Args {
    std::string src, dst, type = "auto", split, name;
    WriteOptions w;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SRC", a->src, "Source checkpoint directory with its tokenizer (safetensors or PyTorch .bin)")->required();
  cmd->add_option("DST", a->dst, "Output GGUF file")->required();
  cmd->add_option("--type", a->type,
                  "Tensor type: f32, f16, bf16, q8_0 (as convert_hf_to_gguf.py --outtype), q4_0, q4_1, q6_k, q4_k "
                  "(llama-quantize's Q4_0, Q4_1, Q6_K, Q4_K_M), or auto (f16 for an f16 source, else bf16; default)");
  cmd->add_option("--split-max-size", a->split,
                  "Split into files of at most this many tensor bytes (5G = 5*10^9, 5GiB = 5*2^30), named as "
                  "llama.cpp's gguf-split: OUT-00001-of-00003.gguf ...");
  cmd->add_option("--name", a->name, "general.name (default: the source directory's name)");
  add_write_options(cmd, a->w);
  cmd->callback([&action, a] {
    action = [a] {
      std::string t = a->type;
      std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      const auto type = gguf_type_from_name(t);
      if (!type) usage("--type must be f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q6_k or auto, not '" + a->type + "'");
      GgufOptions o;
      if (!a->split.empty()) {
        const auto max = parse_byte_size(a->split);
        if (!max || *max == 0) usage("--split-max-size '" + a->split + "' is not a size like 5G, 5GiB or 500M");
        o.split_max_bytes = *max;
      }
      namespace fs = std::filesystem;
      if (a->dst.empty() || a->dst.back() == '/') usage("DST names the output file, not a directory: '" + a->dst + "'");
      o.type = *type;
      o.model_name = a->name;
      o.file_name = fs::path(a->dst).filename().string();
      Checkpoint ck = open_checkpoint(a->src);
      Plan plan = plan_gguf(ck, gguf_vocab_of_model(ck.dir), o);
      WriteOptions w = a->w;
      w.file_destination = true;
      return run_plan(plan, a->dst, {a->src}, w);
    };
  });
}

}  // namespace ckpt::cli
