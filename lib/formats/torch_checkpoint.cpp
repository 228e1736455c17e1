#include "formats/torch_checkpoint.h"

#include <cstring>

#include "core/error.h"
#include "formats/torch_aliases.h"
#include "formats/torch_legacy.h"
#include "formats/torch_zip.h"

namespace ckpt {

namespace {

// tie_word_embeddings from config.json, when the checkpoint has one that says.
std::optional<bool> tie_word_embeddings(const Checkpoint& ck) {
  if (!ck.config || !ck.config->is_object()) return std::nullopt;
  auto it = ck.config->find("tie_word_embeddings");
  if (it == ck.config->end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace

void add_torch_file(Checkpoint& ck, const std::string& path, const OpenOptions& options) {
  File f = File::open_read(path);
  uint8_t head[512] = {};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof head, f.size()));
  f.pread_exact(head, n, 0);
  const int index = static_cast<int>(ck.files.size());
  std::vector<TorchTensor> tensors;
  SourceFormat format;
  if (n >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) {
    format = SourceFormat::kTorchZip;
    tensors = read_torch_zip(f, options.state_dict_key, options.verify_crc, index, ck.checks);
  } else if (is_torch_legacy(head, n)) {
    format = SourceFormat::kTorchLegacy;
    tensors = read_torch_legacy(f, options.state_dict_key, index);
  } else if (n >= 7 && std::memcmp(head, "version", 7) == 0) {
    fail(Errc::kTorchInvalid, path, "", "this is a git-lfs pointer, not the weights (run `git lfs pull`)");
  } else if (n >= 262 && std::memcmp(head + 257, "ustar", 5) == 0) {
    fail(Errc::kUnsupported, path, "", "this is the oldest (tar) torch.save format; torch.load(weights_only=True) refuses it too");
  } else {
    fail(Errc::kTorchInvalid, path, "", "not a PyTorch file (neither a torch zip archive nor a legacy torch stream)");
  }
  AliasChoice choice = choose_aliases(std::move(tensors), tie_word_embeddings(ck), options.keep_aliases);
  check_expansion(path, choice.kept, options.allow_expand);
  ck.files.push_back({path, format, f.size(), std::nullopt});
  for (auto& t : choice.kept) ck.tensors.push_back({std::move(t.name), std::move(t.view)});
  for (auto& d : choice.dropped) ck.aliases.push_back(std::move(d));
}

}  // namespace ckpt
