// Shared by the tests: where the testdata is, scratch directories that clean up after
// themselves, and builders for handcrafted safetensors files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ckpt::test {

std::string testdata(const std::string& relative);
std::string ckpt_binary();

// A fresh directory under $TMPDIR, removed (with its contents) when the object goes away.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes an 8-byte little-endian length, the header text as given, then `data`.
void write_raw_safetensors(const std::string& path, const std::string& header, const std::vector<uint8_t>& data,
                           uint64_t declared_len = UINT64_MAX);
std::vector<uint8_t> read_file_bytes(const std::string& path);
void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

// Runs a shell command, returning its exit status and capturing stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace ckpt::test
