#include "validate/digests.h"

#include <algorithm>
#include <filesystem>

#include "checkpoint/dir_files.h"
#include "core/error.h"
#include "core/hash.h"
#include "formats/packed_source.h"
#include "plan/manifest.h"
#include "validate/checkpoint_bytes.h"

namespace fs = std::filesystem;

namespace ckpt::validate {

const FileDigests* ExpectedDigests::find(const std::string& path) const {
  auto it = files.find(path);
  return it == files.end() ? nullptr : &it->second.second;
}

namespace {

// A file inside a packed checkpoint by its container's canonical path (a path that goes on past a
// regular file is not one the file system can resolve).
std::string canonical(const std::string& p) {
  if (auto packed = split_packed_path(p)) return canonical(packed->first) + "/" + packed->second;
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p : c.string();
}

bool read_digest(const ojson& j, const char* key, uint64_t* out) {
  return j.contains(key) && j[key].is_string() && parse_digest_hex(j[key].get<std::string>(), out);
}

// One manifest (at `path`, on disk or packed) of directory `dir`: checks its extras and returns
// its weight files by canonical path. The files it lists are looked up as the checkpoint's
// (dir_files.h): a packed TP root's manifest names rank-0/model.safetensors, which is inside
// rank-0/checkpoint.ckptpack.
std::map<std::string, FileDigests> read_manifest(const std::string& dir, const std::string& path, const FailFn& fail) {
  std::map<std::string, FileDigests> out;
  StrictJsonResult r = parse_strict_json(read_source_text(path));
  if (!r.ok || !r.value.is_object() || !r.value.contains("files") || !r.value["files"].is_object()) {
    fail("manifest", path, "", "not a ckpt manifest (no \"files\" object)");
    return out;
  }
  for (const auto& [name, jf] : r.value["files"].items()) {
    FileDigests d;
    const std::optional<std::string> file = locate_checkpoint_file(dir, name);
    if (!jf.is_object() || !jf.contains("size") || !jf["size"].is_number_unsigned() ||
        !read_digest(jf, "header_digest", &d.header) || !jf.contains("tensors") || !jf["tensors"].is_object()) {
      fail("manifest", path, "", "entry for '" + name + "' lacks size, header_digest or tensors");
      continue;
    }
    d.size = jf["size"].get<uint64_t>();
    for (const auto& [tname, td] : jf["tensors"].items()) {
      uint64_t v;
      if (!td.is_string() || !parse_digest_hex(td.get<std::string>(), &v)) {
        fail("manifest", path, tname, "digest of '" + name + "' is not 16 hex digits");
        continue;
      }
      d.tensors.emplace_back(tname, v);
    }
    if (!file) {
      fail("manifest", (fs::path(dir) / name).string(), "", "listed in " + path + " but missing");
      continue;
    }
    out[canonical(*file)] = std::move(d);
  }
  if (r.value.contains("extras") && r.value["extras"].is_object()) {
    for (const auto& [name, je] : r.value["extras"].items()) {
      const std::optional<std::string> file = locate_checkpoint_file(dir, name);
      uint64_t want;
      if (!je.is_object() || !read_digest(je, "digest", &want)) {
        fail("manifest", path, "", "extra '" + name + "' has no digest");
        continue;
      }
      if (!file) {
        fail("manifest", (fs::path(dir) / name).string(), "", "listed in " + path + " but missing");
        continue;
      }
      std::string content = read_source_text(*file);
      if (hash_bytes(content.data(), content.size()) != want)
        fail("checksum", *file, "", "content differs from " + path + " (digest mismatch)");
    }
  }
  return out;
}

}  // namespace

ExpectedDigests load_manifests(const std::string& root, const std::vector<const Checkpoint*>& checkpoints,
                               const FailFn& fail) {
  ExpectedDigests result;
  std::vector<std::string> dirs = {root};
  for (const auto* ck : checkpoints) dirs.push_back(ck->dir);
  std::map<std::string, std::pair<std::string, FileDigests>> by_canonical;
  for (const auto& d : dirs) {
    const std::optional<std::string> m = locate_checkpoint_file(d, kManifestName);
    if (!m) continue;
    const std::string cm = canonical(*m);
    bool seen = false;
    for (const auto& have : result.manifests) seen |= canonical(have) == cm;
    if (seen) continue;
    result.manifests.push_back(*m);
    for (auto& [path, digests] : read_manifest(d, *m, fail)) by_canonical[path] = {*m, std::move(digests)};
  }
  for (const auto* ck : checkpoints) {
    for (const auto& f : ck->files) {
      auto it = by_canonical.find(canonical(f.path));
      if (it != by_canonical.end()) result.files[f.path] = it->second;
      else if (!result.manifests.empty())
        fail("manifest", f.path, "", "weight file is not listed in any manifest (" + result.manifests[0] + ")");
    }
  }
  return result;
}

std::vector<TensorExtent> file_tensors(const Checkpoint& ck, size_t file_index) {
  std::vector<TensorExtent> out;
  for (const auto& t : ck.tensors)
    if (t.view.file == static_cast<int>(file_index)) out.push_back({t.name, t.view.offset, t.nbytes()});
  return out;
}

DigestBlocks digest_blocks(const Checkpoint& ck, size_t file_index) {
  DigestBlocks p;
  p.tensors = file_tensors(ck, file_index);
  for (const TensorExtent& t : p.tensors) {
    p.first_block.push_back(p.blocks.size());
    for (uint64_t off = 0; off < t.nbytes; off += kHashBlockBytes)
      p.blocks.emplace_back(t.offset + off, std::min(kHashBlockBytes, t.nbytes - off));
  }
  p.first_block.push_back(p.blocks.size());
  return p;
}

std::vector<std::pair<std::string, uint64_t>> combine_blocks(const DigestBlocks& p,
                                                             const std::vector<uint64_t>& block_digests) {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (size_t t = 0; t < p.tensors.size(); ++t) {
    std::span<const uint64_t> span(block_digests.data() + p.first_block[t], p.first_block[t + 1] - p.first_block[t]);
    out.emplace_back(p.tensors[t].name, combine_digests(span));
  }
  return out;
}

FileDigests compute_file_digests(const Checkpoint& ck, const CheckpointBytes& bytes, size_t file_index,
                                 const Workers& workers, ProgressObserver* progress) {
  const SourceFile& sf = ck.files[file_index];
  const int file = static_cast<int>(file_index);
  std::vector<uint8_t> buf;
  FileDigests d;
  d.size = sf.size;
  const uint8_t* len_bytes = bytes.get(file, 0, 8, buf);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len_bytes[i]) << (8 * i);
  d.header = hash_bytes(bytes.get(file, 0, 8 + header_len, buf), 8 + header_len);  // the reader bounded header_len
  // Every 1 MiB block of every tensor, hashed in parallel, then combined per tensor. (A packed
  // file's groups are the same 1 MiB of each tensor: each block decodes one group.)
  const DigestBlocks plan = digest_blocks(ck, file_index);
  std::vector<uint64_t> block_digest(plan.blocks.size());
  progress_current(progress, sf.path);
  parallel_for(plan.blocks.size(), workers, [&](size_t i) {
    thread_local std::vector<uint8_t> block;
    const auto [off, n] = plan.blocks[i];
    block_digest[i] = hash_bytes(bytes.get(file, off, n, block), n);
    progress_advance(progress, n);
  });
  d.tensors = combine_blocks(plan, block_digest);
  return d;
}

void compare_digests(const std::string& file, const FileDigests& expected, const FileDigests& got,
                     const std::string& source, const FailFn& fail) {
  if (expected.size != got.size) {
    fail("checksum", file, "",
         "file is " + std::to_string(got.size) + " bytes, expected " + std::to_string(expected.size) +
             (got.size < expected.size ? " (truncated)" : ""));
    return;
  }
  if (expected.header != got.header)
    fail("checksum", file, "", "header bytes differ (digest " + digest_hex(got.header) + " on " + source +
                                   ", expected " + digest_hex(expected.header) + ")");
  std::map<std::string, uint64_t> want(expected.tensors.begin(), expected.tensors.end());
  for (const auto& [name, digest] : got.tensors) {
    auto it = want.find(name);
    if (it == want.end()) {
      fail("checksum", file, name, "tensor is not in the expected digests");
      continue;
    }
    if (it->second != digest)
      fail("checksum", file, name, "digest " + digest_hex(digest) + " computed on the " + source +
                                       " differs from the expected " + digest_hex(it->second) +
                                       " (the tensor's bytes changed)");
    want.erase(it);
  }
  for (const auto& [name, digest] : want) fail("checksum", file, name, "expected tensor is missing from the file");
}

}  // namespace ckpt::validate
