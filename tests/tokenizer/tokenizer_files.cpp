#include "tokenizer_files.h"

#include <sys/stat.h>

#include <stdexcept>

#include "test_support.h"

namespace ckpt::test {

std::string repo_path(const std::string& relative) { return testdata("../" + relative); }

std::string staged_tokenizer(const std::string& name) {
  std::string dir = repo_path(".deps/tokenizers/" + name);
  struct stat st;
  return ::stat((dir + "/tokenizer.json").c_str(), &st) == 0 ? dir : std::string();
}

std::string sha256_hex(const std::string& bytes) {
  ScratchDir dir;
  write_file_bytes(dir / "data", std::vector<uint8_t>(bytes.begin(), bytes.end()));
  std::string out;
  if (run_command("sha256sum '" + (dir / "data") + "'", &out) != 0 || out.size() < 64)
    throw std::runtime_error("sha256sum failed: " + out);
  return out.substr(0, 64);
}

}  // namespace ckpt::test
