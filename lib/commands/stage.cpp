#include "commands/stage.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>

#include "checkpoint/checkpoint.h"
#include "checkpoint/parallel_root.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/parallel.h"
#include "core/sizes.h"
#include "formats/strict_json.h"
#include "plan/manifest.h"
#include "plan/output_dir.h"
#include "validate/digests.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

// 64 MiB: large enough that a copy_file_range call amortizes its setup, small enough that the
// threads share the last file evenly.
constexpr uint64_t kCopyChunk = 64ull << 20;
// tmpfs charges whole pages; each file is counted rounded up to one.
constexpr uint64_t kPage = 4096;

bool valid_name(const std::string& n) {
  if (n.empty() || n[0] == '.' || n.size() > 255) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

struct StagedFile {
  std::string rel;  // relative to the source root ("model.safetensors", "rank-1/config.json")
  uint64_t size = 0;
};

// The regular files (symlinks followed: a Hugging Face cache snapshot links its blobs) directly
// in `dir`, as paths relative to `root`.
void add_files_of(const fs::path& root, const fs::path& dir, std::vector<StagedFile>& out) {
  std::vector<StagedFile> here;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) here.push_back({fs::relative(e.path(), root).string(), e.file_size()});
  std::sort(here.begin(), here.end(), [](const StagedFile& a, const StagedFile& b) { return a.rel < b.rel; });
  out.insert(out.end(), here.begin(), here.end());
}

// The root's own files and, for a TP/PP output root, every rank directory's.
std::vector<StagedFile> files_to_stage(const std::string& source) {
  std::vector<StagedFile> files;
  add_files_of(source, source, files);
  for (const RankDir& r : parallel_rank_dirs(source)) add_files_of(source, r.dir, files);
  return files;
}

uint64_t free_bytes_of(const std::string& dir) {
  struct statvfs s {};
  if (::statvfs(dir.c_str(), &s) != 0) fail(Errc::kIo, dir, "", std::string("statvfs: ") + std::strerror(errno));
  return static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
}

// Checks the copied weight files against the copied manifests (the source's, byte for byte),
// hashing the staged bytes: what the processes will map. Returns the files verified, or -1 when
// there is no manifest to check against. A mismatch is thrown naming the source's file.
int64_t verify_copy(const OutputDir& out, const std::string& source, const std::vector<StagedFile>& files,
                    const StageOptions& o) {
  const bool any_manifest = std::any_of(files.begin(), files.end(), [](const StagedFile& f) {
    return fs::path(f.rel).filename() == kManifestName;
  });
  if (!any_manifest) return -1;
  const std::string temp = out.temp_path();
  std::vector<std::unique_ptr<Checkpoint>> cks;
  const std::vector<RankDir> ranks = parallel_rank_dirs(temp);
  if (ranks.empty()) cks.push_back(std::make_unique<Checkpoint>(open_checkpoint(temp)));
  for (const RankDir& r : ranks) cks.push_back(std::make_unique<Checkpoint>(open_checkpoint(r.dir)));
  std::vector<const Checkpoint*> views;
  for (const auto& c : cks) views.push_back(c.get());
  // Failures name the source's file (the temporary directory goes away with the error).
  auto as_source = [&](const std::string& p) {
    return p.compare(0, temp.size(), temp) == 0 ? source + p.substr(temp.size()) : p;
  };
  validate::FailFn fail_fn = [&](const std::string& check, const std::string& file, const std::string& tensor,
                                 const std::string& message) {
    fail(Errc::kCheckFailed, as_source(file), tensor, check + ": " + message);
  };
  validate::ExpectedDigests expected = validate::load_manifests(temp, views, fail_fn);
  int64_t verified = 0;
  progress_begin(o.progress, "verify", 0);
  for (const Checkpoint* ck : views)
    for (size_t i = 0; i < ck->files.size(); ++i) {
      const validate::FileDigests* want = expected.find(ck->files[i].path);
      if (!want) continue;
      validate::compare_digests(ck->files[i].path, *want,
                                validate::compute_file_digests(*ck, i, Workers{o.threads, o.cancel}, o.progress),
                                "staged copy", fail_fn);
      ++verified;
    }
  return verified;
}

}  // namespace

std::string staged_path(const std::string& shm_root, const std::string& name) {
  if (!valid_name(name))
    fail(Errc::kInvalidArgument, name, "", "a staged name is one path component of letters, digits, '.', '_', '-' "
                                           "(not starting with '.')");
  return (fs::path(shm_root) / name).string();
}

std::string stage_name_for(const std::string& source, const std::string& name) {
  if (!name.empty()) return name;
  std::error_code ec;
  fs::path p = fs::weakly_canonical(without_trailing_slashes(source), ec);
  return (ec ? fs::path(without_trailing_slashes(source)) : p).filename().string();
}

StageReport stage_checkpoint(const std::string& source, const std::string& name, const StageOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!fs::is_directory(source, ec)) fail(Errc::kNoCheckpoint, source, "", "stage takes a checkpoint directory");
  if (!fs::is_directory(o.shm_root, ec))
    fail(Errc::kIo, o.shm_root, "", "the shared-memory root does not exist (is /dev/shm mounted?)");
  const std::string dest = staged_path(o.shm_root, name);
  check_output(dest, o.force, {source});
  const std::vector<StagedFile> files = files_to_stage(source);
  if (files.empty()) fail(Errc::kNoCheckpoint, source, "", "no files to stage");
  StageReport r;
  uint64_t need = kPage;  // the marker
  for (const auto& f : files) {
    r.bytes += f.size;
    need += (f.size + kPage - 1) / kPage * kPage;
  }
  r.files = files.size();
  r.free_bytes = free_bytes_of(o.shm_root);
  if (need > r.free_bytes)
    fail(Errc::kIo, o.shm_root, "",
         "not enough space to stage " + source + ": it needs " + format_bytes(need) + ", " + o.shm_root + " has " +
             format_bytes(r.free_bytes) + " free; nothing was copied");

  OutputDir out(dest, o.force, {source});
  struct Chunk {
    size_t file;
    uint64_t offset, len;
  };
  std::vector<File> src, dst;
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string to = out.path_of(files[i].rel);
    fs::create_directories(fs::path(to).parent_path(), ec);
    if (ec) fail(Errc::kIo, to, "", "cannot create the directory: " + ec.message());
    src.push_back(File::open_read((fs::path(source) / files[i].rel).string()));
    if (src.back().size() != files[i].size) fail(Errc::kIo, src.back().path(), "", "the file changed size while staging");
    dst.push_back(File::create(to));
    dst.back().truncate(files[i].size);
    for (uint64_t off = 0; off < files[i].size; off += kCopyChunk)
      chunks.push_back({i, off, std::min(kCopyChunk, files[i].size - off)});
  }
  progress_begin(o.progress, "stage", r.bytes);
  parallel_for(chunks.size(), Workers{o.threads, o.cancel}, [&](size_t c) {
    const Chunk& ch = chunks[c];
    copy_file_bytes(src[ch.file], ch.offset, dst[ch.file], ch.offset, ch.len);
    progress_advance(o.progress, ch.len);
  });
  for (File& f : dst) f.close();
  const int64_t verified = verify_copy(out, source, files, o);
  r.manifest = verified >= 0;
  r.verified_files = verified > 0 ? static_cast<uint64_t>(verified) : 0;
  ojson marker = {{"source", fs::absolute(source).lexically_normal().string()},
                  {"name", name},
                  {"files", r.files},
                  {"bytes", r.bytes},
                  {"verified_files", r.verified_files}};
  write_text_file(out.path_of(kStagedMarkerName), marker.dump(2) + "\n");
  // No fsync: the root is memory (tmpfs), where it would cost nothing and mean nothing.
  out.commit();
  r.path = dest;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string find_staged(const std::string& shm_root, const std::string& name) {
  const std::string dir = staged_path(shm_root, name);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    fail(Errc::kNoCheckpoint, dir, "", "no staged copy named '" + name + "' (ckpt stage SRC --shm " + name + " makes one)");
  if (!fs::is_regular_file(fs::path(dir) / kStagedMarkerName, ec))
    fail(Errc::kInvalidArgument, dir, "",
         std::string("not a copy made by ckpt stage (no ") + kStagedMarkerName + "); left alone");
  return dir;
}

void drop_staged(const std::string& shm_root, const std::string& name) {
  const std::string dir = find_staged(shm_root, name);
  const fs::path aside = fs::path(shm_root) / ("." + name + ".ckpt-drop-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::rename(dir, aside, ec);
  if (ec) fail(Errc::kIo, dir, "", "cannot move the staged copy aside: " + ec.message());
  fs::remove_all(aside, ec);
  if (ec) fail(Errc::kIo, aside.string(), "", "cannot remove the staged copy: " + ec.message());
}

}  // namespace ckpt
