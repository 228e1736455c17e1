#include "commands/pack.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <span>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "core/parallel.h"
#include "formats/packed_source.h"
#include "plan/executor.h"
#include "plan/extra_files.h"
#include "plan/output_dir.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

// One directory of the source and its files, packed into one container.
struct PackJob {
  std::string rel;                 // directory relative to the source root ("" for the root)
  std::vector<std::string> paths;  // its regular files, by name
};

std::vector<PackJob> find_jobs(const std::string& root) {
  std::vector<std::string> dirs{root};
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_directory()) dirs.push_back(it->path().string());
  std::vector<PackJob> jobs;
  for (const auto& d : dirs) {
    PackJob j;
    j.rel = d == root ? "" : fs::relative(d, root).string();
    for (const auto& e : fs::directory_iterator(d))
      if (e.is_regular_file()) j.paths.push_back(e.path().string());
    if (j.paths.empty()) continue;
    std::sort(j.paths.begin(), j.paths.end());
    for (const auto& p : j.paths)
      if (fs::path(p).filename() == kPackFileName)
        fail(Errc::kUnsupported, p, "", "the source is already packed (unpack it first)");
    jobs.push_back(std::move(j));
  }
  std::sort(jobs.begin(), jobs.end(), [](const PackJob& a, const PackJob& b) { return a.rel < b.rel; });
  return jobs;
}

// Where group i of a container comes from.
struct GroupRef {
  size_t member, region;
  uint64_t g;
};

// Per-thread state (a zstd context for one level, and a group's raw bytes).
struct Worker {
  explicit Worker(int l) : level(l), encoder(l) {}
  int level;
  GroupEncoder encoder;
  std::vector<uint8_t> raw;
};

Worker& thread_worker(int level) {
  thread_local std::unique_ptr<Worker> w;
  if (!w || w->level != level) w = std::make_unique<Worker>(level);
  return *w;
}

void pack_one(const PackJob& job, const std::string& out_path, const PackOptions& o, int threads, PackRatios& ratios) {
  std::vector<File> files;
  std::vector<PackMember> members;
  for (const auto& p : job.paths) {
    files.push_back(File::open_read(p));
    PackMember m;
    m.name = fs::path(p).filename().string();
    m.size = files.back().size();
    m.regions = regions_of_file(m.name, files.back());
    members.push_back(std::move(m));
  }
  PackLayout layout = build_pack_layout(members);
  std::vector<GroupRef> groups;
  for (size_t mi = 0; mi < members.size(); ++mi)
    for (size_t ri = 0; ri < members[mi].regions.size(); ++ri)
      for (uint64_t g = 0; g < members[mi].regions[ri].group_count(); ++g) groups.push_back({mi, ri, g});

  File out = File::create(out_path);
  std::vector<EncodedFrame> frames(layout.frame_count);
  std::vector<uint64_t> digests(layout.group_count);
  std::vector<uint64_t> first_frame(layout.group_count);
  for (uint64_t gi = 0, f = 0; gi < groups.size(); ++gi) {
    first_frame[gi] = f;
    f += members[groups[gi].member].regions[groups[gi].region].planes;
  }

  // Groups are encoded in parallel and appended in order as each is done, so the bytes do not
  // depend on the thread count and writing overlaps encoding; memory in flight is `window`
  // encoded groups (GroupEncoder::bound of 1 MiB each) plus a 1 MiB read buffer per thread.
  const size_t window = static_cast<size_t>(threads) * 4;
  struct Slot {
    std::unique_ptr<uint8_t[]> data;
    uint64_t size = 0;
  };
  std::vector<Slot> slots(window);
  const uint64_t slot_bytes = std::max({GroupEncoder::bound(kPackGroupBytes, 1), GroupEncoder::bound(kPackGroupBytes, 2),
                                        GroupEncoder::bound(kPackGroupBytes, 4)});
  uint64_t cursor = layout.data_start();
  parallel_for_ordered(
      groups.size(), Workers{threads, o.cancel}, window,
      [&](size_t i) {
        Worker& w = thread_worker(o.level);
        const GroupRef& gr = groups[i];
        const PackRegion& r = members[gr.member].regions[gr.region];
        const uint64_t at = gr.g * kPackGroupBytes;
        const uint64_t len = std::min(kPackGroupBytes, r.length - at);
        w.raw.resize(len);
        files[gr.member].pread_exact(w.raw.data(), len, r.offset + at);
        digests[i] = hash_bytes(w.raw.data(), len);
        Slot& s = slots[i % window];
        if (!s.data) s.data.reset(new uint8_t[slot_bytes]);
        s.size = w.encoder.encode(w.raw.data(), len, r.planes, s.data.get(),
                                  std::span<EncodedFrame>(frames.data() + first_frame[i], r.planes));
      },
      [&](size_t i) {
        const Slot& s = slots[i % window];
        out.pwrite_exact(s.data.get(), s.size, cursor);
        cursor += s.size;
      });

  // Digests are final now: the header (same length, digests are fixed-width hex) and the tables.
  size_t gi = 0;
  for (auto& m : members) {
    std::vector<uint64_t> d;
    for (const auto& r : m.regions)
      for (uint64_t g = 0; g < r.group_count(); ++g) d.push_back(digests[gi++]);
    m.digest = combine_digests(d);
  }
  PackLayout final_layout = build_pack_layout(members);
  if (final_layout.json.size() != layout.json.size()) throw std::logic_error("pack: header length changed");
  std::string head = pack_prefix(final_layout.json.size()) + final_layout.json;
  auto put = [&head](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) head.push_back(static_cast<char>(v >> (8 * i)));
  };
  for (const auto& f : frames) {
    put(f.size, 4);
    put(static_cast<uint32_t>(f.kind), 4);
  }
  for (uint64_t d : digests) put(d, 8);
  out.pwrite_exact(head.data(), head.size(), 0);

  PackIndex idx;  // for the tally, from what was written
  idx.members = members;
  for (size_t i = 0; i < frames.size(); ++i) idx.frames.push_back({0, frames[i].size, frames[i].kind});
  for (size_t i = 0; i < digests.size(); ++i) idx.groups.push_back({first_frame[i], digests[i]});
  PackRatios r = pack_ratios(idx);
  for (const auto& [k, v] : r.by_dtype) ratios.by_dtype[k].add(v.original, v.packed);
  for (const auto& [k, v] : r.by_class) ratios.by_class[k].add(v.original, v.packed);
  ratios.total.add(r.total.original, r.total.packed);
}

}  // namespace

std::string tensor_class(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("embed") || has("lm_head") || has("wte") || has("wpe")) return "embeddings";
  if (has("norm") || has("ln_")) return "norms";
  if (has("attn") || has("attention") || has("q_proj") || has("k_proj") || has("v_proj") || has("o_proj")) return "attention";
  if (has("mlp") || has("expert") || has("gate") || has("up_proj") || has("down_proj") || has("router")) return "mlp";
  return "other";
}

PackRatios pack_ratios(const PackIndex& index) {
  PackRatios r;
  for (const auto& m : index.members) {
    for (const auto& reg : m.regions) {
      uint64_t packed = 0;
      for (uint64_t g = 0; g < reg.group_count(); ++g) {
        const uint64_t f0 = index.groups[reg.first_group + g].first_frame;
        for (unsigned p = 0; p < reg.planes; ++p) packed += index.frames[f0 + p].size;
      }
      r.by_dtype[reg.dtype ? std::string(dtype_name(*reg.dtype)) : "other bytes"].add(reg.length, packed);
      if (reg.dtype) r.by_class[tensor_class(reg.tensor)].add(reg.length, packed);
      r.total.add(reg.length, packed);
    }
  }
  return r;
}

ojson pack_ratios_json(const PackRatios& r) {
  auto tally = [](const PackTally& t) {
    return ojson{{"original_bytes", t.original}, {"packed_bytes", t.packed}, {"ratio", t.ratio()}};
  };
  ojson j = ojson::object();
  ojson d = ojson::object(), c = ojson::object();
  for (const auto& [k, v] : r.by_dtype) d[k] = tally(v);
  for (const auto& [k, v] : r.by_class) c[k] = tally(v);
  j["by_dtype"] = d;
  j["by_class"] = c;
  j["total"] = tally(r.total);
  return j;
}

PackReport pack_checkpoint(const std::string& source, const std::string& destination, const PackOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!fs::is_directory(source, ec)) fail(Errc::kNoCheckpoint, source, "", "pack takes a checkpoint directory");
  if (o.level < 1 || o.level > 19) fail(Errc::kInvalidArgument, "", "", "--level must be between 1 and 19");
  PackReport report;
  report.threads = Workers{o.threads, o.cancel}.count();
  const std::vector<PackJob> jobs = find_jobs(source);
  if (jobs.empty()) fail(Errc::kNoCheckpoint, source, "", "no files to pack");
  OutputDir out(destination, o.force, {source});
  for (const auto& job : jobs) {
    const std::string rel = job.rel.empty() ? kPackFileName : job.rel + "/" + kPackFileName;
    const std::string path = out.path_of(rel);
    fs::create_directories(fs::path(path).parent_path(), ec);
    if (ec) fail(Errc::kIo, path, "", "cannot create the directory: " + ec.message());
    pack_one(job, path, o, report.threads, report.ratios);
    report.containers.push_back(rel);
  }
  if (o.sync) out.sync(o.cancel);
  out.commit();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

UnpackReport unpack_checkpoint(const std::string& packed, const std::string& destination, const PackOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!fs::is_directory(packed, ec)) fail(Errc::kNoCheckpoint, packed, "", "unpack takes a packed checkpoint directory");
  std::vector<std::string> rels;  // directories holding a container, relative to `packed`
  for (auto it = fs::recursive_directory_iterator(packed); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file() && it->path().filename() == kPackFileName)
      rels.push_back(fs::relative(it->path().parent_path(), packed).string());
  if (rels.empty()) fail(Errc::kNoCheckpoint, packed, "", std::string("no ") + kPackFileName + " here: not a packed checkpoint");
  std::sort(rels.begin(), rels.end());
  UnpackReport report;
  report.threads = Workers{o.threads, o.cancel}.count();
  // Every container is opened (and its tables checked) before anything is written.
  std::vector<std::shared_ptr<const PackedContainer>> containers;
  for (const auto& rel : rels) containers.push_back(PackedContainer::open((fs::path(packed) / rel / kPackFileName).string()));
  OutputDir out(destination, o.force, {packed});
  struct Task {
    const PackedContainer* c;
    const PackMember* m;
    const PackRegion* r;
    uint64_t g;
    size_t file;
  };
  std::vector<Task> tasks;
  // A durable run writes straight to the disk while it decodes (OutputFileWriter's direct writes,
  // as the executor does): the bytes must be on the disk before the commit anyway, and buffered
  // writes left all of them to the final fsync (3.6 s where cp + sync took 1.8 s, BENCHMARKS.md).
  std::vector<OutputFileWriter> files;
  for (size_t ci = 0; ci < containers.size(); ++ci) {
    for (const auto& m : containers[ci]->index().members) {
      files.push_back(OutputFileWriter::create(new_output_path(out, rels[ci] == "." ? m.name : rels[ci] + "/" + m.name),
                                               m.size, o.sync));
      for (const auto& r : m.regions)
        for (uint64_t g = 0; g < r.group_count(); ++g) tasks.push_back({containers[ci].get(), &m, &r, g, files.size() - 1});
      report.bytes += m.size;
    }
  }
  report.files = files.size();
  // Groups decode independently into their final offsets: any order, any thread count, the same
  // bytes. Each is decoded into a write-behind buffer at its file offset's place in a page, so its
  // whole pages go to the disk directly from there (only the page it shares with each neighbour
  // goes through the page cache); direct writes are handed to writer threads, page-cache writes
  // stay in the thread that decoded the bytes.
  const bool direct = std::any_of(files.begin(), files.end(), [](const OutputFileWriter& f) { return f.direct(); });
  const int writers = direct ? WriteBehind::kDirectWriters : 0;
  WriteBehind writes(2 * static_cast<size_t>(report.threads) + 2 * static_cast<size_t>(writers),
                     kPackGroupBytes + kDirectAlign, writers);
  parallel_for(tasks.size(), Workers{report.threads, o.cancel}, [&](size_t i) {
    const Task& t = tasks[i];
    const uint64_t len = std::min(kPackGroupBytes, t.r->length - t.g * kPackGroupBytes);
    const uint64_t at = t.r->offset + t.g * kPackGroupBytes;
    uint8_t* buf = writes.acquire();
    uint8_t* const data = buf + at % kDirectAlign;
    try {
      t.c->decode_group(*t.m, *t.r, t.g, data);
    } catch (...) {
      writes.release(buf);
      throw;
    }
    writes.submit(files[t.file], buf, data, len, at);
  });
  writes.finish();
  for (OutputFileWriter& f : files) f.close();
  files.clear();
  if (o.sync) out.sync(o.cancel);
  out.commit();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace ckpt
