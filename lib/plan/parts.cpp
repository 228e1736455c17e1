#include "plan/parts.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "core/parallel.h"
#include "plan/extra_files.h"
#include "plan/manifest.h"
#include "plan/output_dir.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

constexpr const char* kRecordFormat = "ckpt-parts/1";
constexpr const char* kRecordName = "plan.json";

// One output file as the staging record describes it: enough to re-hash the staged bytes
// without the source or the plan.
struct StagedFile {
  std::string name;
  uint32_t part = 0;
  uint64_t size = 0;
  uint64_t prefix_bytes = 0;  // 8 + header
  uint64_t header_digest = 0;
  struct Extent {
    std::string name;
    uint64_t offset = 0, nbytes = 0;
  };
  std::vector<Extent> tensors;  // file order
};

std::string part_label(uint32_t i, uint32_t n) { return std::to_string(i) + "/" + std::to_string(n); }

std::string marker_name(uint32_t i, uint32_t n) {
  return "part-" + std::to_string(i) + "-of-" + std::to_string(n) + ".json";
}

// staging/files/<index>: the executor's destination for output file <index> is .../out, so
// anything else in the directory is what a killed executor left (its temporary directory).
std::string unit_dir(const std::string& staging, size_t index) {
  return staging + "/files/" + std::to_string(index);
}
std::string unit_out(const std::string& staging, size_t index) { return unit_dir(staging, index) + "/out"; }

// The digests of staged files computed from their bytes, in the manifest's form.
std::vector<ManifestFile> hash_staged(const std::vector<const StagedFile*>& files, const std::vector<std::string>& paths,
                                      const Workers& workers, ProgressObserver* progress) {
  std::vector<File> open;
  std::vector<ManifestFile> out(files.size());
  std::vector<std::vector<std::vector<uint64_t>>> blocks(files.size());
  struct Work {
    size_t file, tensor;
    uint64_t first_block, blocks;
  };
  constexpr uint64_t kBlocksPerWork = 16;
  std::vector<Work> work;
  for (size_t i = 0; i < files.size(); ++i) {
    const StagedFile& f = *files[i];
    File file = File::open_read(paths[i]);
    if (file.size() != f.size)
      fail(Errc::kCheckFailed, paths[i], "",
           "the staged file has " + std::to_string(file.size()) + " bytes, its plan says " + std::to_string(f.size));
    std::string head(f.prefix_bytes, '\0');
    file.pread_exact(head.data(), head.size(), 0);
    out[i].name = f.name;
    out[i].size = f.size;
    out[i].header_digest = hash_bytes(head.data(), head.size());
    blocks[i].resize(f.tensors.size());
    for (size_t t = 0; t < f.tensors.size(); ++t) {
      const uint64_t nb = hash_block_count(f.tensors[t].nbytes);
      blocks[i][t].assign(nb, 0);
      for (uint64_t b = 0; b < nb; b += kBlocksPerWork) work.push_back({i, t, b, std::min(kBlocksPerWork, nb - b)});
    }
    open.push_back(std::move(file));
  }
  uint64_t total = 0;
  for (const StagedFile* f : files)
    for (const auto& t : f->tensors) total += t.nbytes;
  progress_begin(progress, "verify", total);
  parallel_for(work.size(), workers, [&](size_t w) {
    const Work& k = work[w];
    progress_current(progress, files[k.file]->name);
    const StagedFile::Extent& e = files[k.file]->tensors[k.tensor];
    thread_local std::vector<uint8_t> buf;
    buf.resize(kHashBlockBytes);
    for (uint64_t b = k.first_block; b < k.first_block + k.blocks; ++b) {
      const uint64_t at = b * kHashBlockBytes;
      const uint64_t n = std::min(kHashBlockBytes, e.nbytes - at);
      open[k.file].pread_exact(buf.data(), n, e.offset + at);
      blocks[k.file][k.tensor][b] = hash_bytes(buf.data(), n);
      progress_advance(progress, n);
    }
  });
  for (size_t i = 0; i < files.size(); ++i)
    for (size_t t = 0; t < files[i]->tensors.size(); ++t)
      out[i].tensors.push_back({files[i]->tensors[t].name, combine_digests(blocks[i][t])});
  return out;
}

uint64_t digest_of(const ManifestFile& m) {
  std::vector<uint64_t> d;
  for (const auto& t : m.tensors) d.push_back(t.second);
  return file_digest(m.header_digest, d);
}

std::vector<StagedFile> staged_files(const Plan& plan, const std::vector<uint32_t>& parts) {
  std::vector<StagedFile> out;
  for (size_t i = 0; i < plan.files.size(); ++i) {
    const OutputFile& f = plan.files[i];
    StagedFile s;
    s.name = f.name;
    s.part = parts[i];
    s.size = f.size;
    const std::string& prefix = f.head;
    s.prefix_bytes = prefix.size();
    s.header_digest = hash_bytes(prefix.data(), prefix.size());
    for (size_t t = 0; t < f.tensors.size(); ++t) s.tensors.push_back({f.tensors[t].name, f.offsets[t], f.tensors[t].nbytes()});
    out.push_back(std::move(s));
  }
  return out;
}

ojson record_json(const Plan& plan, const std::vector<StagedFile>& files, uint32_t count, const ExecOptions& opt) {
  ojson r = ojson::object();
  r["format"] = kRecordFormat;
  r["plan_digest"] = digest_hex(plan_digest(plan));
  r["parts"] = count;
  r["command"] = plan.command;
  r["command_line"] = opt.command_line;
  if (plan.notes.contains("pipeline")) r["pipeline"] = plan.notes["pipeline"];
  r["sources"] = plan.sources;
  r["protected_paths"] = opt.protected_paths;
  ojson fs_ = ojson::array();
  for (const auto& f : files) {
    ojson jf = ojson::object();
    jf["name"] = f.name;
    jf["part"] = f.part;
    jf["size"] = f.size;
    jf["prefix_bytes"] = f.prefix_bytes;
    jf["header_digest"] = digest_hex(f.header_digest);
    ojson ts = ojson::array();
    for (const auto& t : f.tensors) ts.push_back(ojson::array({t.name, t.offset, t.nbytes}));
    jf["tensors"] = ts;
    fs_.push_back(jf);
  }
  r["files"] = fs_;
  ojson ex = ojson::array();
  for (const auto& e : plan.extras) {
    ojson je = ojson::object();
    je["name"] = e.name;
    if (e.content) je["content"] = *e.content;
    else je["copy_from"] = *e.copy_from;
    ex.push_back(je);
  }
  r["extras"] = ex;
  return r;
}

ojson read_json(const std::string& path, const std::string& what) {
  auto parsed = parse_strict_json(read_text_file(path));
  if (!parsed.ok || !parsed.value.is_object())
    fail(Errc::kCheckFailed, path, "", "not a valid " + what + " (" + parsed.error + ")");
  return parsed.value;
}

uint64_t hex_field(const ojson& j, const char* key, const std::string& path) {
  uint64_t v = 0;
  if (!j.contains(key) || !j[key].is_string() || !parse_digest_hex(j[key].get<std::string>(), &v))
    fail(Errc::kCheckFailed, path, "", std::string("the field '") + key + "' is missing or not a digest");
  return v;
}

// Writes `content` to `path` so that readers see either nothing or all of it.
void write_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  {
    File f = File::create(tmp);
    f.pwrite_exact(content.data(), content.size(), 0);
    f.sync();
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail_errno(path, "cannot move into place");
}

// Makes sure the staging record describes this plan: writes it when absent, refuses a staging
// directory left by another plan or another part count.
void ensure_record(const std::string& staging, const ojson& record) {
  const std::string path = staging + "/" + kRecordName;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fs::exists(path)) {
      ojson have = read_json(path, "staging record");
      if (have.value("format", "") != kRecordFormat)
        fail(Errc::kCheckFailed, path, "", "not a staging record of this ckpt version");
      if (have["plan_digest"] != record["plan_digest"])
        fail(Errc::kCheckFailed, staging, "",
             "the staging directory holds parts of a different plan (plan digest " +
                 have["plan_digest"].get<std::string>() + ", this run's " + record["plan_digest"].get<std::string>() +
                 "): same source, command and options in every part, or remove it");
      if (have["parts"] != record["parts"])
        fail(Errc::kCheckFailed, staging, "",
             "the staging directory was cut into " + have["parts"].dump() + " parts, this run into " +
                 record["parts"].dump() + ": every part must give the same n in --part i/n");
      return;
    }
    if (attempt == 0) write_atomically(path, record.dump(1) + "\n");
  }
}

// Holds an exclusive lock on staging/part-i-of-n.lock for the life of the run: a second process
// running the same part at the same time is refused. The kernel drops the lock when a process
// dies, however it dies.
class PartLock {
 public:
  PartLock(const std::string& staging, PartSpec p) {
    path_ = staging + "/part-" + std::to_string(p.index) + "-of-" + std::to_string(p.count) + ".lock";
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail_errno(path_, "cannot open the part's lock file");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0)
      fail(Errc::kCheckFailed, path_, "", "part " + part_label(p.index, p.count) + " is being written by another process");
  }
  ~PartLock() { ::close(fd_); }
  PartLock(const PartLock&) = delete;
  PartLock& operator=(const PartLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// Which output file runs each source check (a torch zip record's CRC): the first file with a
// tensor copied verbatim from the check's range, so the copy feeds it; otherwise spread by the
// check's index. Every check then runs exactly once over all parts.
std::vector<SourceChecks> checks_by_file(const Plan& plan) {
  std::vector<SourceChecks> by_file(plan.files.size());
  if (plan.files.empty()) return by_file;
  for (size_t c = 0; c < plan.checks.size(); ++c) {
    const SourceCheck& check = *plan.checks[c];
    size_t owner = c % plan.files.size();
    bool found = false;
    for (size_t i = 0; i < plan.files.size() && !found; ++i)
      for (const auto& t : plan.files[i].tensors) {
        auto v = t.producer->verbatim(0, t.nbytes());
        if (v && v->file == check.file() && v->offset < check.offset() + check.bytes() &&
            check.offset() < v->offset + t.nbytes()) {
          owner = i;
          found = true;
          break;
        }
      }
    by_file[owner].push_back(plan.checks[c]);
  }
  return by_file;
}

// The digests a staged file's executor recorded in its directory's manifest.
ManifestFile recorded_digests(const std::string& unit, const StagedFile& f) {
  const std::string path = unit + "/" + kManifestName;
  ojson m = read_json(path, "manifest");
  if (!m.contains("files") || !m["files"].is_object() || !m["files"].contains(f.name))
    fail(Errc::kCheckFailed, path, "", "does not list " + f.name);
  const ojson& jf = m["files"][f.name];
  ManifestFile mf;
  mf.name = f.name;
  mf.size = f.size;
  mf.header_digest = hex_field(jf, "header_digest", path);
  if (!jf.contains("tensors") || !jf["tensors"].is_object()) fail(Errc::kCheckFailed, path, f.name, "no tensor digests");
  for (const auto& t : f.tensors) {
    if (!jf["tensors"].contains(t.name)) fail(Errc::kCheckFailed, path, t.name, "no digest for this tensor");
    mf.tensors.push_back({t.name, hex_field(jf["tensors"], t.name.c_str(), path)});
  }
  return mf;
}

// The first difference between recorded and computed digests, as an error naming the tensor.
[[noreturn]] void fail_mismatch(const std::string& path, const ManifestFile& want, const ManifestFile& got) {
  if (want.header_digest != got.header_digest)
    fail(Errc::kCheckFailed, path, "", "the staged file's header does not match the plan");
  for (size_t t = 0; t < want.tensors.size() && t < got.tensors.size(); ++t)
    if (want.tensors[t].second != got.tensors[t].second)
      fail(Errc::kCheckFailed, path, want.tensors[t].first,
           "the staged bytes do not match the digest recorded when the file was written");
  fail(Errc::kCheckFailed, path, "", "the staged file does not match the digest its part recorded");
}

}  // namespace

std::optional<PartSpec> parse_part(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) return std::nullopt;
  auto number = [](const std::string& s) -> std::optional<uint32_t> {
    if (s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return static_cast<uint32_t>(std::stoul(s));
  };
  auto i = number(text.substr(0, slash)), n = number(text.substr(slash + 1));
  if (!i || !n || *n == 0 || *i >= *n) return std::nullopt;
  return PartSpec{*i, *n};
}

std::vector<uint32_t> assign_parts(const Plan& plan, uint32_t count) {
  std::vector<size_t> order(plan.files.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return plan.files[a].size > plan.files[b].size; });
  std::vector<uint64_t> load(count, 0);
  std::vector<uint32_t> part(plan.files.size(), 0);
  for (size_t i : order) {
    uint32_t best = static_cast<uint32_t>(std::min_element(load.begin(), load.end()) - load.begin());
    part[i] = best;
    load[best] += plan.files[i].size;
  }
  return part;
}

uint64_t plan_digest(const Plan& plan) {
  std::string all = plan.to_json().dump();
  for (const auto& f : plan.files) all += f.head;
  for (const auto& e : plan.extras)
    if (e.content) all += *e.content;
  return hash_bytes(all.data(), all.size());
}

std::string staging_path(const std::string& destination) { return without_trailing_slashes(destination) + ".ckpt-parts"; }

PartReport run_part(const Plan& plan, const std::string& destination, PartSpec part, const ExecOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string staging = staging_path(destination);
  for (const auto& s : opt.protected_paths) {
    check_destination(destination, s, opt.force);
    check_destination(staging, s, false);
  }
  const std::vector<uint32_t> parts = assign_parts(plan, part.count);
  const std::vector<StagedFile> files = staged_files(plan, parts);
  const ojson record = record_json(plan, files, part.count, opt);
  const std::string marker = staging + "/" + marker_name(part.index, part.count);

  PartReport report;
  for (size_t i = 0; i < files.size(); ++i)
    if (parts[i] == part.index) ++report.files;
  auto done = [&] {
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return report;
  };
  // A part marked finished is still re-hashed below: a staged file damaged after its part
  // finished must be rewritten, not discovered by finalize.
  const bool marked = fs::exists(marker) && read_json(marker, "part record")["plan_digest"] == record["plan_digest"];
  std::error_code ec;
  if (!marked && fs::exists(fs::symlink_status(destination, ec)) && !opt.force)
    fail(Errc::kDestinationExists, destination, "", "the destination exists (use --force to replace it)");
  fs::create_directories(staging + "/files", ec);
  if (ec) fail(Errc::kIo, staging, "", "cannot create the staging directory: " + ec.message());
  ensure_record(staging, record);
  PartLock lock(staging, part);

  const std::vector<SourceChecks> checks = checks_by_file(plan);
  const Workers workers{opt.threads, opt.cancel};
  ojson written = ojson::object();
  for (size_t i = 0; i < files.size(); ++i) {
    if (parts[i] != part.index) continue;
    workers.check();
    const StagedFile& f = files[i];
    const std::string unit = unit_dir(staging, i), out = unit_out(staging, i);
    // A file completed by an earlier run is kept only when its bytes hash to what was recorded.
    if (fs::exists(out + "/" + kManifestName)) {
      ManifestFile want = recorded_digests(out, f);
      ManifestFile got = hash_staged({&f}, {out + "/" + f.name}, workers, opt.progress)[0];
      if (want.header_digest == f.header_digest && digest_of(want) == digest_of(got)) {
        written[f.name] = digest_hex(digest_of(got));
        ++report.reused;
        report.bytes_reused += f.size;
        continue;
      }
    }
    fs::remove_all(unit, ec);
    fs::create_directories(unit, ec);
    if (ec) fail(Errc::kIo, unit, "", "cannot create the staging directory: " + ec.message());
    Plan one;
    one.command = plan.command;
    one.sources = plan.sources;
    one.files = {plan.files[i]};
    one.checks = checks[i];
    ExecOptions eo = opt;
    eo.force = false;
    ExecReport r = execute(one, out, eo);
    written[f.name] = r.manifest["files"][f.name]["digest"];
    report.bytes_written += one.tensor_bytes();
  }
  report.already_done = marked && report.reused == report.files;
  ojson m = ojson::object();
  m["plan_digest"] = record["plan_digest"];
  m["part"] = part_label(part.index, part.count);
  m["files"] = written;
  write_atomically(marker, m.dump(1) + "\n");
  return done();
}

ExecReport finalize_parts(const std::string& destination, const ExecOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string staging = staging_path(destination);
  const std::string record_path = staging + "/" + kRecordName;
  if (!fs::exists(record_path))
    fail(Errc::kCheckFailed, staging, "", "no staging record here: run the parts first (--part i/n)");
  const ojson rec = read_json(record_path, "staging record");
  if (rec.value("format", "") != kRecordFormat) fail(Errc::kCheckFailed, record_path, "", "not a staging record of this ckpt version");
  const uint32_t count = rec.at("parts").get<uint32_t>();
  std::error_code exists_ec;
  if (fs::exists(fs::symlink_status(destination, exists_ec)) && !opt.force)
    fail(Errc::kDestinationExists, destination, "", "the destination exists (use --force to replace it)");

  // Every part present, each from this plan.
  std::vector<ojson> markers(count);
  std::string missing;
  for (uint32_t k = 0; k < count; ++k) {
    const std::string path = staging + "/" + marker_name(k, count);
    if (!fs::exists(path)) {
      missing += (missing.empty() ? "" : ", ") + part_label(k, count);
      continue;
    }
    markers[k] = read_json(path, "part record");
    if (markers[k]["plan_digest"] != rec["plan_digest"])
      fail(Errc::kCheckFailed, path, "", "part " + part_label(k, count) + " was written for a different plan");
  }
  if (!missing.empty())
    fail(Errc::kCheckFailed, staging, "", "not every part has finished; missing: " + missing +
                                              " (run them with --part i/n, then finalize again)");

  std::vector<StagedFile> files;
  for (const auto& jf : rec.at("files")) {
    StagedFile f;
    f.name = jf.at("name").get<std::string>();
    f.part = jf.at("part").get<uint32_t>();
    f.size = jf.at("size").get<uint64_t>();
    f.prefix_bytes = jf.at("prefix_bytes").get<uint64_t>();
    f.header_digest = hex_field(jf, "header_digest", record_path);
    for (const auto& t : jf.at("tensors")) f.tensors.push_back({t.at(0).get<std::string>(), t.at(1).get<uint64_t>(), t.at(2).get<uint64_t>()});
    if (f.part >= count) fail(Errc::kCheckFailed, record_path, f.name, "names a part beyond the part count");
    files.push_back(std::move(f));
  }

  // Every staged file re-hashed and compared with the digest its part recorded.
  std::vector<const StagedFile*> ptrs;
  std::vector<std::string> paths;
  for (size_t i = 0; i < files.size(); ++i) {
    ptrs.push_back(&files[i]);
    paths.push_back(unit_out(staging, i) + "/" + files[i].name);
    const ojson& mk = markers[files[i].part];
    if (!mk.contains("files") || !mk["files"].contains(files[i].name))
      fail(Errc::kCheckFailed, staging, files[i].name,
           "part " + part_label(files[i].part, count) + " did not record this file");
  }
  const Workers workers{opt.threads, opt.cancel};
  std::vector<ManifestFile> got = hash_staged(ptrs, paths, workers, opt.progress);
  for (size_t i = 0; i < files.size(); ++i) {
    uint64_t want = hex_field(markers[files[i].part]["files"], files[i].name.c_str(), staging);
    if (got[i].header_digest != files[i].header_digest || digest_of(got[i]) != want)
      fail_mismatch(paths[i], recorded_digests(unit_out(staging, i), files[i]), got[i]);
  }

  // The output directory: staged files linked in (the staging keeps them until the commit, so an
  // interrupted finalize can run again), then the small files and the manifest, then the rename.
  std::vector<std::string> protect = rec.at("protected_paths").get<std::vector<std::string>>();
  protect.insert(protect.end(), opt.protected_paths.begin(), opt.protected_paths.end());
  OutputDir out(destination, opt.force, protect);
  progress_begin(opt.progress, "link", 0);
  for (size_t i = 0; i < files.size(); ++i) {
    workers.check();
    progress_current(opt.progress, files[i].name);
    const std::string to = new_output_path(out, files[i].name);
    if (::link(paths[i].c_str(), to.c_str()) != 0) {
      File src = File::open_read(paths[i]);
      File dst = File::create(to);
      copy_file_bytes(src, 0, dst, 0, src.size());
      dst.close();
    }
  }
  ManifestInput mi;
  mi.command = rec.at("command").get<std::string>();
  mi.command_line = rec.at("command_line").get<std::vector<std::string>>();
  if (rec.contains("pipeline")) mi.pipeline = rec["pipeline"];
  mi.sources = rec.at("sources").get<std::vector<std::string>>();
  mi.files = got;
  for (const auto& je : rec.at("extras")) {
    ExtraFile e;
    e.name = je.at("name").get<std::string>();
    if (je.contains("content")) e.content = je["content"].get<std::string>();
    else e.copy_from = je.at("copy_from").get<std::string>();
    workers.check();
    write_extra_file(out, e);
    mi.extras.push_back(e.name);
  }
  ExecReport report;
  report.manifest = write_manifest(out, mi);
  if (opt.sync) {
    progress_begin(opt.progress, "sync", 0);
    out.sync(opt.cancel);
  }
  workers.check();  // the last moment an interruption still leaves the destination untouched
  out.commit();
  report.notes = out.notes();
  std::error_code ec;
  fs::remove_all(staging, ec);
  for (const auto& f : files) {
    report.tensors += f.tensors.size();
    for (const auto& t : f.tensors) report.tensor_bytes += t.nbytes;
  }
  report.threads = workers.count();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace ckpt
