#include "commands/stage.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "checkpoint/checkpoint.h"
#include "checkpoint/parallel_root.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
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

std::string canonical(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p : c.string();
}

// A staged weight file the source's manifest lists: its digests are computed from the bytes as
// they are copied (one pass: each 1 MiB block read, hashed, written) and compared at the end.
struct Checked {
  const validate::FileDigests* want = nullptr;
  validate::DigestBlocks plan;
  uint64_t header_bytes = 0;  // 8 + N
  uint64_t header_digest = 0;
  std::vector<uint64_t> block_digests;
};

// The source's checkpoints (the root, or each rank) and the manifests' digests, where the source
// has a ckpt-manifest.json; a bad manifest or a listed file missing is refused here, before
// anything is created. Null when there is no manifest.
struct SourceDigests {
  std::vector<std::unique_ptr<Checkpoint>> cks;
  validate::ExpectedDigests expected;
};
std::unique_ptr<SourceDigests> source_digests(const std::string& source, const std::vector<StagedFile>& files,
                                          const validate::FailFn& fail_fn) {
  const bool any_manifest = std::any_of(files.begin(), files.end(), [](const StagedFile& f) {
    return fs::path(f.rel).filename() == kManifestName;
  });
  if (!any_manifest) return nullptr;
  auto sc = std::make_unique<SourceDigests>();
  const std::vector<RankDir> ranks = parallel_rank_dirs(source);
  if (ranks.empty()) sc->cks.push_back(std::make_unique<Checkpoint>(open_checkpoint(source)));
  for (const RankDir& r : ranks) sc->cks.push_back(std::make_unique<Checkpoint>(open_checkpoint(r.dir)));
  std::vector<const Checkpoint*> views;
  for (const auto& c : sc->cks) views.push_back(c.get());
  sc->expected = validate::load_manifests(source, views, fail_fn);
  return sc;
}

// The copy's units: a verified file's header and each digest block (so that each is hashed whole
// as it passes), anything else in chunks copied by the kernel where it can.
struct Unit {
  size_t file;
  uint64_t offset, len;
  long block;  // index into the file's digest blocks; kHeader; kPlain
};
constexpr long kHeader = -1, kPlain = -2;

void add_plain(size_t file, uint64_t begin, uint64_t end, std::vector<Unit>& units) {
  for (uint64_t off = begin; off < end; off += kCopyChunk) units.push_back({file, off, std::min(kCopyChunk, end - off), kPlain});
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
  validate::FailFn fail_fn = [](const std::string& check, const std::string& file, const std::string& tensor,
                                const std::string& message) { fail(Errc::kCheckFailed, file, tensor, check + ": " + message); };
  const std::unique_ptr<SourceDigests> sc = source_digests(source, files, fail_fn);

  std::map<std::string, std::pair<const Checkpoint*, size_t>> weight_files;  // canonical path -> (checkpoint, index)
  if (sc)
    for (const auto& ck : sc->cks)
      for (size_t j = 0; j < ck->files.size(); ++j) weight_files[canonical(ck->files[j].path)] = {ck.get(), j};
  OutputDir out(dest, o.force, {source});
  std::vector<File> src, dst;
  std::vector<Checked> checked(files.size());
  std::vector<Unit> units;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string from = (fs::path(source) / files[i].rel).string(), to = out.path_of(files[i].rel);
    fs::create_directories(fs::path(to).parent_path(), ec);
    if (ec) fail(Errc::kIo, to, "", "cannot create the directory: " + ec.message());
    src.push_back(File::open_read(from));
    if (src.back().size() != files[i].size) fail(Errc::kIo, from, "", "the file changed size while staging");
    dst.push_back(File::create(to));
    dst.back().truncate(files[i].size);
    auto wf = weight_files.find(canonical(from));
    const validate::FileDigests* want = wf == weight_files.end() ? nullptr : sc->expected.find(wf->second.first->files[wf->second.second].path);
    if (!want) {
      add_plain(i, 0, files[i].size, units);
      continue;
    }
    Checked& c = checked[i];
    c.want = want;
    c.plan = validate::digest_blocks(*wf->second.first, wf->second.second);
    c.block_digests.resize(c.plan.blocks.size());
    uint8_t prefix[8];
    src.back().pread_exact(prefix, 8, 0);
    for (int b = 0; b < 8; ++b) c.header_bytes |= static_cast<uint64_t>(prefix[b]) << (8 * b);
    c.header_bytes += 8;  // bounded by the reader that opened the file
    units.push_back({i, 0, c.header_bytes, kHeader});
    uint64_t covered = c.header_bytes;
    for (size_t b = 0; b < c.plan.blocks.size(); ++b) {
      const auto [off, len] = c.plan.blocks[b];
      add_plain(i, covered, off, units);  // none in a valid safetensors file: tensors are contiguous
      units.push_back({i, off, len, static_cast<long>(b)});
      covered = std::max(covered, off + len);
    }
    add_plain(i, covered, files[i].size, units);
  }
  progress_begin(o.progress, "stage", r.bytes);
  parallel_for(units.size(), Workers{o.threads, o.cancel}, [&](size_t u) {
    const Unit& un = units[u];
    if (un.block == kPlain) {
      copy_file_bytes(src[un.file], un.offset, dst[un.file], un.offset, un.len);
    } else {
      thread_local std::vector<uint8_t> buf;
      buf.resize(un.len);
      src[un.file].pread_exact(buf.data(), un.len, un.offset);
      const uint64_t digest = hash_bytes(buf.data(), un.len);
      if (un.block == kHeader) checked[un.file].header_digest = digest;
      else checked[un.file].block_digests[un.block] = digest;
      dst[un.file].pwrite_exact(buf.data(), un.len, un.offset);
    }
    progress_advance(o.progress, un.len);
  });
  for (File& f : dst) f.close();
  for (size_t i = 0; i < files.size(); ++i) {
    const Checked& c = checked[i];
    if (!c.want) continue;
    validate::FileDigests got;
    got.size = files[i].size;
    got.header = c.header_digest;
    got.tensors = validate::combine_blocks(c.plan, c.block_digests);
    validate::compare_digests(src[i].path(), *c.want, got, "copy", fail_fn);
    ++r.verified_files;
  }
  r.manifest = sc != nullptr;
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
