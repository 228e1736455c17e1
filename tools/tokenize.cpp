// ckpt tokenize MODEL --text "..." | --file F [--json] [--no-special]
// ckpt tokenize MODEL --decode 1,5,9 [--skip-special] [--json]
#include <cstdint>
#include <cstdio>

#include "common.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/sizes.h"
#include "model/token_ids.h"
#include "subcommands.h"
#include "tokenizer/tokenizer.h"

namespace ckpt::cli {

void add_tokenize(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("tokenize", "Text to the model's token ids and pieces (tokenizer.json / tokenizer.model), or ids back to text");
  struct Args {
    std::string model, text, file, decode;
    bool json = false, no_special = false, skip_special = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("MODEL", a->model, "Model directory (tokenizer.json or tokenizer.model, tokenizer_config.json) or the tokenizer file")->required();
  auto* text = cmd->add_option("--text", a->text, "Text to tokenize");
  auto* file = cmd->add_option("--file", a->file, "File whose bytes are tokenized (invalid UTF-8 is replaced by U+FFFD)");
  auto* dec = cmd->add_option("--decode", a->decode, "Ids to decode: 1,5,9 or a .safetensors/.json/.npy file");
  text->excludes(file)->excludes(dec);
  file->excludes(dec);
  cmd->add_flag("--no-special", a->no_special, "Do not add the BOS/EOS the tokenizer adds (add_special_tokens=False)");
  cmd->add_flag("--skip-special", a->skip_special, "--decode: leave special tokens out of the text");
  cmd->add_flag("--json", a->json, "Print JSON");
  cmd->callback([&action, a, text, file, dec] {
    action = [a, text, file, dec] {
      if (!*text && !*file && !*dec) usage("give --text, --file or --decode");
      tok::Tokenizer t = tok::Tokenizer::load(a->model);
      if (*dec) {
        std::vector<int32_t> ids;
        model::TokenIds parsed = model::read_token_ids_argument(a->decode);
        for (int64_t id : parsed.ids) {
          if (id < 0 || static_cast<uint64_t>(id) >= t.vocab_size())
            fail(Errc::kInvalidArgument, "", "", "--decode: id " + std::to_string(id) + " is not below the vocabulary size " +
                                                     std::to_string(t.vocab_size()));
          ids.push_back(static_cast<int32_t>(id));
        }
        std::string out = t.decode(ids, a->skip_special);
        if (a->json) std::printf("%s\n", ojson({{"text", out}}).dump(2, ' ', false, ojson::error_handler_t::replace).c_str());
        else std::printf("%s\n", out.c_str());
        return kExitOk;
      }
      std::string input = *file ? read_text_file(a->file) : a->text;
      std::vector<int32_t> ids = t.encode(input, !a->no_special);
      if (a->json) {
        ojson pieces = ojson::array();
        for (int32_t id : ids) pieces.push_back(t.piece(id));
        ojson j = {{"count", ids.size()}, {"ids", ids}, {"pieces", pieces}};
        std::printf("%s\n", j.dump(-1, ' ', false, ojson::error_handler_t::replace).c_str());
        return kExitOk;
      }
      std::printf("%s\n", count_of(ids.size(), "token").c_str());
      for (int32_t id : ids) std::printf("%d\t%s\n", id, printable(t.piece(id), SIZE_MAX).c_str());
      return kExitOk;
    };
  });
}

}  // namespace ckpt::cli
