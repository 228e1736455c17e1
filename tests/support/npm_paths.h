// Where the test setup installs npm packages (tests/support/npm_fetch.sh: ${CKPT_NPM_DIR}, else
// <repository>/.deps/npm), and the pinned node-llama-cpp whose llama.cpp the GGUF tests load.
#pragma once

#include <cstdlib>
#include <string>

namespace ckpt::test {

inline constexpr const char* kNodeLlamaCppVersion = "3.21.1";

inline std::string npm_dir() {
  if (const char* d = std::getenv("CKPT_NPM_DIR"); d && *d) return d;
  return std::string(CKPT_TESTDATA_DIR) + "/../.deps/npm";
}

// llama.cpp's ggml base library as node-llama-cpp ships it (the CPU build for linux-x64).
inline std::string libggml_base_path() {
  return npm_dir() + "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
}

}  // namespace ckpt::test
