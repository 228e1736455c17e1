// ckpt inspect PATH [--json]
#include <iostream>

#include "commands/inspect.h"
#include "common.h"
#include "interrupt.h"
#include "subcommands.h"

namespace ckpt::cli {

void add_inspect(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("inspect", "Show the files, tensors, dtypes and parameter count of a checkpoint");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("PATH", *path, "A checkpoint file or directory, or the root of a TP/PP output")->required();
  cmd->add_flag("--json", *json, "Print one JSON document on stdout");
  cmd->callback([&action, path, json] {
    action = [path, json] {
      OpenOptions oo = open_options();
      oo.allow_expand = true;  // inspect writes nothing: it shows expanded views with their full size
      ojson r = inspect_path(*path, oo);
      // Opening checks the token before each weight file; building the report of a large model
      // takes a while too: a signal received meanwhile stops the command here, before any output.
      std::string text = *json ? r.dump(2) + "\n" : inspect_text(r);
      check_cancel(&interrupt_token());
      std::cout << text;
      return kExitOk;
    };
  });
}

}  // namespace ckpt::cli
