// Opening a checkpoint (a file or a Hugging Face directory) into its tensors and side files.
// Opening reads headers and indexes only, never tensor data.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "checkpoint/hf_cache.h"
#include "checkpoint/source_check.h"
#include "checkpoint/tensor_ref.h"
#include "core/cancel.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"

namespace ckpt {

enum class SourceFormat { kSafetensors, kTorchZip, kTorchLegacy };
const char* source_format_name(SourceFormat f);

struct SourceFile {
  std::string path;
  SourceFormat format;
  uint64_t size = 0;
  std::optional<Metadata> metadata;  // safetensors __metadata__
};

// A non-weight file that travels with the weights (config.json, tokenizer files, templates...).
struct SideFile {
  std::string name;  // file name relative to the checkpoint directory
  std::string path;  // where it is now
  // The bytes, where no file on disk holds them: a side file inside a packed checkpoint, or one
  // an earlier pipeline step generated (plan/pipeline.h; `path` is then empty).
  std::optional<std::string> content;
};

// A side file's bytes (read from disk, or the packed checkpoint's decoded copy).
std::string side_file_text(const SideFile& s);

struct Checkpoint {
  std::string path;  // as given
  std::string dir;   // the directory holding the weight files
  std::vector<SourceFile> files;
  std::vector<TensorRef> tensors;  // file by file, in data order within each file
  std::vector<SideFile> side_files;
  std::optional<ojson> config;     // config.json, when present
  std::optional<std::string> index_file;  // the index that listed the shards, if any
  // The packed container the files are read from (formats/packed_source.h), if any.
  std::optional<std::string> packed;
  // Names dropped while opening (exact aliases of another tensor), with the name they alias.
  std::vector<std::pair<std::string, std::string>> aliases;
  // Checks of source bytes to run while a plan over this checkpoint executes (torch zip CRCs).
  SourceChecks checks;

  const TensorRef* find(const std::string& name) const;
  // The side file of that name (read it with side_file_text), or nullptr.
  const SideFile* side_file(const std::string& name) const;
  uint64_t total_bytes() const;
  // config.json's architectures[0], or "" when unknown.
  std::string architecture() const;
};

struct OpenOptions {
  bool verify_crc = true;        // torch zip: check every record's CRC-32
  std::string state_dict_key;    // torch: take the tensor dict under this top-level key
  bool keep_aliases = false;     // torch: write exact aliases (tied weights) under every name
  bool allow_expand = false;     // torch: accept views that repeat their storages far past their size
  // A directory holding both PyTorch and safetensors weights: read the PyTorch ones (convert).
  bool prefer_torch = false;
  const CancelToken* cancel = nullptr;  // checked before each weight file is opened
  // Where the Hugging Face cache is looked up (checkpoint/hf_cache.h); std::getenv when unset.
  EnvLookup env;
};

// The bytes of the checkpoint's side file `name`, or nullopt when it has none.
std::optional<std::string> side_file_text(const Checkpoint& ck, const std::string& name);

// `path` is a weight file, a Hugging Face directory, a packed checkpoint, or a model in the
// Hugging Face cache (a models--org--name/ folder, or "org/name": resolve_model_path). Given a
// single weight file in a directory that also holds a config.json (a model directory), the
// config and the side files beside it are read as for the directory: `convert DIR/pytorch_model.bin`
// carries config.json, tokenizer and generation files along.
Checkpoint open_checkpoint(const std::string& path, const OpenOptions& options = {});

// True for file names that hold weights in some format (never carried as side files).
bool is_weight_file_name(const std::string& name);

}  // namespace ckpt
