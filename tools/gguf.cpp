// ckpt gguf SRC OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_1|q4_k|q6_k|auto] [--split-max-size 5G]
//     [--name NAME]
// Also a pipeline step (`ckpt run`, tools/steps.h), the last one: its output is the file DST names.
#include <algorithm>

#include "commands/gguf.h"
#include "commands/gguf_vocab.h"
#include "core/sizes.h"
#include "steps.h"
#include "subcommands.h"

namespace ckpt::cli {

MakeStep add_gguf_options(CLI::App* cmd) {
  struct Args {
    std::string type = "auto", split, name;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--type", a->type,
                  "Tensor type: f32, f16, bf16, q8_0 (as convert_hf_to_gguf.py --outtype), q4_0, q4_1, q6_k, q4_k "
                  "(llama-quantize's Q4_0, Q4_1, Q6_K, Q4_K_M), or auto (f16 for an f16 source, else bf16; default)");
  cmd->add_option("--split-max-size", a->split,
                  "Split into files of at most this many tensor bytes (5G = 5*10^9, 5GiB = 5*2^30), named as "
                  "llama.cpp's gguf-split: OUT-00001-of-00003.gguf ...");
  cmd->add_option("--name", a->name, "general.name (default: the source directory's name)");
  return [a] {
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
    o.type = *type;
    o.model_name = a->name;
    Step s;
    s.plan_file = [o](const Checkpoint& ck, const std::string& file_name) {
      GgufOptions named = o;
      named.file_name = file_name;
      return plan_gguf(ck, gguf_vocab_of_model(ck), named);
    };
    return s;
  };
}

void add_gguf(CLI::App& app, std::function<int()>& action) {
  add_step_subcommand(app, action, "gguf",
                      "Export one GGUF file for llama.cpp, with the model's tokenizer (Llama, Mistral, Mixtral, Qwen2, Qwen3, Phi-3)",
                      "Source checkpoint directory with its tokenizer (safetensors or PyTorch .bin)", "Output GGUF file",
                      &add_gguf_options);
}

}  // namespace ckpt::cli
