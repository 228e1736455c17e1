#include "checkpoint/checkpoint.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "checkpoint/dir_files.h"
#include "core/error.h"
#include "formats/hf_index.h"
#include "formats/packed_source.h"
#include "formats/torch_checkpoint.h"

namespace fs = std::filesystem;

namespace ckpt {

const char* source_format_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::kSafetensors: return "safetensors";
    case SourceFormat::kTorchZip: return "torch-zip";
    case SourceFormat::kTorchLegacy: return "torch-legacy";
  }
  return "?";
}

const TensorRef* Checkpoint::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const SideFile* Checkpoint::side_file(const std::string& name) const {
  for (const auto& s : side_files)
    if (s.name == name) return &s;
  return nullptr;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.nbytes();
  return n;
}

std::string Checkpoint::architecture() const {
  if (!config || !config->is_object()) return "";
  auto it = config->find("architectures");
  if (it == config->end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return "";
  return (*it)[0].get<std::string>();
}

std::string side_file_text(const SideFile& s) { return s.content ? *s.content : read_text_file(s.path); }

std::optional<std::string> side_file_text(const Checkpoint& ck, const std::string& name) {
  const SideFile* s = ck.side_file(name);
  if (!s) return std::nullopt;
  return side_file_text(*s);
}

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_weight_file_name(const std::string& name) {
  for (const char* ext : {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack",
                          ".onnx", ".index.json"})
    if (ends_with(name, ext)) return true;
  return name == "ckpt-manifest.json";
}

namespace {

bool is_torch_file_name(const std::string& name) {
  return ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth");
}

// A safetensors file on disk, or one inside a packed checkpoint.
void add_safetensors_source(Checkpoint& ck, const ByteSource& src) {
  SafetensorsHeader h = read_safetensors_header(src);
  int index = static_cast<int>(ck.files.size());
  ck.files.push_back({src.name(), SourceFormat::kSafetensors, src.size(), h.metadata});
  for (auto& t : h.tensors) {
    TensorRef r;
    r.name = std::move(t.name);
    r.view.file = index;
    r.view.offset = h.data_start() + t.begin;
    r.view.dtype = t.dtype;
    r.view.shape = std::move(t.shape);
    ck.tensors.push_back(std::move(r));
  }
}

void add_safetensors_file(Checkpoint& ck, const std::string& path) {
  File f = File::open_read(path);
  add_safetensors_source(ck, FileSource(f));
}

void add_weight_file(Checkpoint& ck, const std::string& path, const OpenOptions& opt) {
  check_cancel(opt.cancel);
  if (ends_with(path, ".safetensors")) add_safetensors_file(ck, path);
  else add_torch_file(ck, path, opt);
}

// Side files: every top-level regular file of the model directory that is not a weight, index or
// manifest file. A single weight file given outside a model directory (no config.json beside it)
// has none: the user pointed at a file, not at a model.
void collect_side_files(Checkpoint& ck) {
  std::vector<SideFile> sides;
  for (const auto& e : fs::directory_iterator(ck.dir)) {
    std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file() || is_weight_file_name(name)) continue;
    sides.push_back({name, e.path().string(), std::nullopt});
  }
  std::sort(sides.begin(), sides.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  ck.side_files = std::move(sides);
}

void check_unique_names(const Checkpoint& ck) {
  std::map<std::string, int> seen;
  for (const auto& t : ck.tensors) {
    auto [it, inserted] = seen.emplace(t.name, t.view.file);
    if (!inserted)
      fail(Errc::kDuplicateKey, ck.files[t.view.file].path, t.name,
           "tensor name also appears in " + ck.files[it->second].path);
  }
}

void parse_config(Checkpoint& ck, const std::string& path, const std::string& text) {
  StrictJsonResult r = parse_strict_json(text);
  if (!r.ok) fail(Errc::kInvalidArgument, path, "", "config.json is not valid JSON: " + r.error);
  ck.config = std::move(r.value);
}

void read_config(Checkpoint& ck) {
  fs::path cfg = fs::path(ck.dir) / "config.json";
  if (!fs::is_regular_file(cfg)) return;
  parse_config(ck, cfg.string(), read_text_file(cfg.string()));
}

// A packed checkpoint (formats/pack_format.h): the same Hugging Face layout, read from the files
// inside the container. Weight files are safetensors read through PackedMemberSource; every other
// file is a side file whose bytes are decoded now (they are small: config, tokenizer, index).
void open_packed(Checkpoint& ck, const std::string& container_path) {
  auto c = PackedContainer::open(container_path);
  const PackIndex& idx = c->index();
  ck.packed = container_path;
  ck.dir = fs::path(container_path).parent_path().string();
  if (ck.dir.empty()) ck.dir = ".";
  if (const PackMember* m = idx.find("config.json")) parse_config(ck, c->member_path(*m), c->read_member(*m));
  std::vector<const PackMember*> weights;
  std::optional<HfIndex> index;
  if (const PackMember* m = idx.find("model.safetensors.index.json")) {
    ck.index_file = c->member_path(*m);
    index = parse_hf_index(*ck.index_file, c->read_member(*m));
    for (const auto& shard : index->shard_files()) {
      const PackMember* w = idx.find(shard);
      if (!w) fail(Errc::kIndexMismatch, *ck.index_file, "", "shard " + shard + " is not in the packed checkpoint");
      weights.push_back(w);
    }
  } else if (const PackMember* m = idx.find("model.safetensors")) {
    weights.push_back(m);
  } else {
    for (const auto& m : idx.members)
      if (ends_with(m.name, ".safetensors")) weights.push_back(&m);
    std::sort(weights.begin(), weights.end(), [](auto* a, auto* b) { return a->name < b->name; });
  }
  if (weights.empty())
    fail(Errc::kNoCheckpoint, container_path, "",
         "no safetensors weights in this packed checkpoint (other formats are read after `ckpt unpack`)");
  for (const PackMember* m : weights) add_safetensors_source(ck, PackedMemberSource(c, *m));
  if (index) check_index_matches(*index, *ck.index_file, ck);
  for (const auto& m : idx.members)
    if (!is_weight_file_name(m.name)) ck.side_files.push_back({m.name, c->member_path(m), c->read_member(m)});
}

}  // namespace

Checkpoint open_checkpoint(const std::string& given, const OpenOptions& opt) {
  const EnvLookup env = opt.env ? opt.env : EnvLookup([](const char* n) { return std::getenv(n); });
  const std::string path = resolve_model_path(given, env);
  Checkpoint ck;
  ck.path = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(Errc::kNoCheckpoint, path, "", "no such file or directory");
  if (auto container = packed_container_of(path)) {
    open_packed(ck, *container);
  } else if (fs::path(path).filename() == kPackFileName) {
    open_packed(ck, path);
  } else if (fs::is_directory(path)) {
    ck.dir = path;
    read_config(ck);  // before the weights: alias handling of torch files looks at tie_word_embeddings
    auto has = [&](const char* name) { return fs::is_regular_file(fs::path(path) / name); };
    std::vector<std::string> shard_paths;
    const bool torch_first = opt.prefer_torch && (has("pytorch_model.bin.index.json") || has("pytorch_model.bin"));
    if (torch_first && has("pytorch_model.bin.index.json")) {
      ck.index_file = (fs::path(path) / "pytorch_model.bin.index.json").string();
    } else if (torch_first) {
      shard_paths.push_back((fs::path(path) / "pytorch_model.bin").string());
    } else if (has("model.safetensors.index.json")) {
      ck.index_file = (fs::path(path) / "model.safetensors.index.json").string();
    } else if (has("model.safetensors")) {
      shard_paths.push_back((fs::path(path) / "model.safetensors").string());
    } else if (has("pytorch_model.bin.index.json")) {
      ck.index_file = (fs::path(path) / "pytorch_model.bin.index.json").string();
    } else if (has("pytorch_model.bin")) {
      shard_paths.push_back((fs::path(path) / "pytorch_model.bin").string());
    } else {
      // No Hugging Face name: take every *.safetensors file (or, failing that, every torch file).
      for (bool torch : {false, true}) {
        for (const auto& e : fs::directory_iterator(path)) {
          std::string n = e.path().filename().string();
          if (e.is_regular_file() && (torch ? is_torch_file_name(n) : ends_with(n, ".safetensors")))
            shard_paths.push_back(e.path().string());
        }
        if (!shard_paths.empty()) break;
      }
      std::sort(shard_paths.begin(), shard_paths.end());
      if (shard_paths.empty())
        fail(Errc::kNoCheckpoint, path, "", "no model.safetensors, pytorch_model.bin or index file in this directory");
    }
    if (ck.index_file) {
      HfIndex index = read_hf_index(*ck.index_file);
      for (const auto& shard : index.shard_files()) add_weight_file(ck, (fs::path(path) / shard).string(), opt);
      check_index_matches(index, *ck.index_file, ck);
    } else {
      for (const auto& p : shard_paths) add_weight_file(ck, p, opt);
    }
    collect_side_files(ck);
  } else {
    ck.dir = fs::path(path).parent_path().string();
    if (ck.dir.empty()) ck.dir = ".";
    // A weight file of a model directory (config.json beside it): the config first, as for the
    // directory (alias handling of torch files reads tie_word_embeddings), and its side files.
    const bool model_dir = fs::is_regular_file(fs::path(ck.dir) / "config.json");
    if (model_dir) read_config(ck);
    add_weight_file(ck, path, opt);
    if (model_dir) collect_side_files(ck);
  }
  check_unique_names(ck);
  check_cancel(opt.cancel);
  return ck;
}

}  // namespace ckpt
