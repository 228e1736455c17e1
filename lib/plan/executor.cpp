#include "plan/executor.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "core/parallel.h"
#include "plan/check_passes.h"
#include "plan/extra_files.h"
#include "plan/manifest.h"
#include "plan/output_dir.h"

namespace ckpt {

namespace {

// One unit of work: output bytes [begin, begin + n) of one tensor.
struct Chunk {
  size_t file, tensor;
  uint64_t begin, n;
};

struct TensorState {
  std::vector<uint64_t> block_digests;
};

// Orders chunks round-robin over the output files: threads working at the same time then write
// different files (buffered writes to one file serialize on its inode lock), and plans whose
// files read the same source regions (shard's ranks) read them close together in time.
std::vector<Chunk> interleave_files(std::vector<Chunk> chunks, size_t files) {
  if (files < 2) return chunks;
  std::vector<std::vector<Chunk>> per_file(files);
  for (const auto& c : chunks) per_file[c.file].push_back(c);
  std::vector<Chunk> out;
  out.reserve(chunks.size());
  for (size_t i = 0; out.size() < chunks.size(); ++i)
    for (const auto& f : per_file)
      if (i < f.size()) out.push_back(f[i]);
  return out;
}

}  // namespace

uint64_t peak_rss_bytes() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

ExecReport execute(const Plan& plan, const std::string& destination, const ExecOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  const Workers workers{opt.threads, opt.cancel};
  const int threads = workers.count();
  workers.check();
  if (opt.file_destination && !plan.extras.empty())
    throw std::logic_error("execute: a file destination takes a plan without extras");
  OutputDir out(destination, opt.force, opt.protected_paths,
                opt.file_destination ? OutputDir::Kind::kFile : OutputDir::Kind::kDirectory, plan.file_names());
  SourceReader reader(plan.sources);

  // Headers first: every size is known, so each file gets its final length and header now. A
  // durable run writes the data directly to the disk (OutputFileWriter): it must reach the disk
  // before the commit anyway, and so it gets there while the work goes on, without a copy through
  // the page cache; with --no-sync the page cache is the fast place to leave it.
  std::vector<OutputFileWriter> files;
  for (const auto& f : plan.files) {
    if (f.offsets.size() != f.tensors.size()) throw std::logic_error("execute: plan was not finalized");
    files.push_back(OutputFileWriter::create(new_output_path(out, f.name), f.size, opt.sync));
    files.back().write(f.head.data(), f.head.size(), 0);
  }

  // Chunk size: a multiple of the hash block, small enough that all threads' buffers (output
  // plus a producer's input scratch, up to twice as large) stay within the memory budget.
  uint64_t chunk = opt.memory_budget / (3 * static_cast<uint64_t>(threads));
  chunk = std::clamp<uint64_t>(chunk / kHashBlockBytes, 1, 8) * kHashBlockBytes;

  std::vector<std::vector<TensorState>> state(plan.files.size());
  std::vector<Chunk> chunks;
  std::vector<Producer*> to_prepare;
  for (size_t fi = 0; fi < plan.files.size(); ++fi) {
    const auto& f = plan.files[fi];
    state[fi].resize(f.tensors.size());
    for (size_t ti = 0; ti < f.tensors.size(); ++ti) {
      uint64_t nb = f.tensors[ti].nbytes();
      state[fi][ti].block_digests.assign(hash_block_count(nb), 0);
      to_prepare.push_back(f.tensors[ti].producer.get());
      for (uint64_t b = 0; b < nb; b += chunk) chunks.push_back({fi, ti, b, std::min(chunk, nb - b)});
    }
  }
  chunks = interleave_files(std::move(chunks), plan.files.size());

  progress_begin(opt.progress, "write", plan.tensor_bytes());
  parallel_for(to_prepare.size(), workers, [&](size_t i) { to_prepare[i]->prepare(reader); });

  // Direct writes go to writer threads (they wait for the disk, the workers go on making bytes);
  // page-cache writes stay in the workers, one at a time per file (the others queue their blocks
  // for it and go on). Each worker holds at most two buffers (the block it makes and the next,
  // which takes the carried page); the rest are writes queued or in flight.
  const bool any_direct = std::any_of(files.begin(), files.end(), [](const OutputFileWriter& f) { return f.direct(); });
  const int writers = any_direct ? WriteBehind::kDirectWriters : 0;
  WriteBehind writes(2 * static_cast<size_t>(threads) + 2 * static_cast<size_t>(std::max(writers, threads)),
                     kHashBlockBytes + kDirectAlign, writers);

  // Source checks (torch zip CRCs) read only what no verbatim copy fed them, once every chunk is done.
  const CheckPasses checks(plan.checks);
  parallel_for(chunks.size(), workers, [&](size_t ci) {
    const Chunk& c = chunks[ci];
    progress_current(opt.progress, plan.files[c.file].name);
    const OutputTensor& t = plan.files[c.file].tensors[c.tensor];
    const OutputFileWriter& file = files[c.file];
    const uint64_t dst_off = plan.files[c.file].offsets[c.tensor] + c.begin;
    const auto v = t.producer->verbatim(c.begin, c.n);
    // One hash block at a time is made (or read, for a verbatim copy), hashed and handed to the
    // writer from a pool buffer, so each block stays in the CPU cache from the producer to the
    // hash (and, written in this thread, to the page-cache copy); a whole chunk would go through
    // DRAM twice more, which made `ckpt cast` (bench_cast.sh) several times slower than cp on a
    // 2-core machine. The block sits at its file offset's place in a page (OutputFileWriter's rule
    // for direct writes). A direct write stops at the last page boundary of its block but for the
    // chunk's last: the bytes after it are copied in front of the next block's buffer, completing
    // the page that the next block's write starts with, so only the pages at a chunk's two ends go
    // through the page cache.
    uint8_t* buf = writes.acquire();
    uint64_t carried = 0;  // bytes in front of the block, the previous block's, not written yet
    std::vector<uint64_t> digests;
    try {
      for (uint64_t off = 0; off < c.n; off += kHashBlockBytes) {
        const uint64_t n = std::min(kHashBlockBytes, c.n - off);
        uint8_t* const data = buf + (dst_off + off) % kDirectAlign;
        if (v) {
          // Source checks (torch zip CRCs) take the bytes the verbatim copies read, while in cache.
          reader.read(v->file, data, n, v->offset + off);
          checks.feed(v->file, v->offset + off, data, n);
        } else {
          t.producer->produce(reader, c.begin + off, n, data);
        }
        digests.push_back(hash_bytes(data, n));
        const uint64_t keep = file.direct() && off + n < c.n ? (dst_off + off + n) % kDirectAlign : 0;
        uint8_t* next = nullptr;
        if (off + n < c.n) {
          next = writes.acquire();
          std::memcpy(next, data + n - keep, keep);
        }
        uint8_t* const done = buf;
        buf = next;
        writes.submit(file, done, data - carried, carried + n - keep, dst_off + off - carried);
        carried = keep;
      }
    } catch (...) {
      if (buf) writes.release(buf);
      throw;
    }
    // A durable output is fsync'ed at the end: what went through the page cache starts its
    // write-back now, so the final fsync has little left to wait for.
    if (opt.sync) file.start_writeback(dst_off, c.n);
    auto& blocks = state[c.file][c.tensor].block_digests;
    std::copy(digests.begin(), digests.end(), blocks.begin() + static_cast<ptrdiff_t>(c.begin / kHashBlockBytes));
    progress_advance(opt.progress, c.n);
  });
  writes.finish();
  progress_begin(opt.progress, "verify", 0);
  parallel_for(checks.size(), workers, [&](size_t i) { checks.finish(i, reader, opt.cancel); });

  // Extras: generated files and carried side files.
  progress_begin(opt.progress, "side files", 0);
  for (const auto& e : plan.extras) {
    workers.check();
    progress_current(opt.progress, e.name);
    write_extra_file(out, e);
  }

  ManifestInput mi;
  mi.command = plan.command;
  mi.command_line = opt.command_line;
  if (plan.notes.contains("pipeline")) mi.pipeline = plan.notes["pipeline"];
  mi.sources = plan.sources;
  for (size_t fi = 0; fi < plan.files.size(); ++fi) {
    const auto& f = plan.files[fi];
    ManifestFile mf;
    mf.name = f.name;
    mf.size = f.size;
    mf.header_digest = hash_bytes(f.head.data(), f.head.size());
    for (size_t ti = 0; ti < f.tensors.size(); ++ti)
      mf.tensors.push_back({f.tensors[ti].name, combine_digests(state[fi][ti].block_digests)});
    mi.files.push_back(std::move(mf));
  }
  for (const auto& e : plan.extras) mi.extras.push_back(e.name);
  ExecReport report;
  report.manifest = write_manifest(out, mi);

  for (OutputFileWriter& f : files) f.close();
  files.clear();
  if (opt.sync) {
    progress_begin(opt.progress, "sync", 0);
    out.sync(opt.cancel);
  }
  workers.check();  // the last moment an interruption still leaves the destination untouched
  out.commit();
  report.notes = out.notes();
  report.tensors = plan.tensor_count();
  report.tensor_bytes = plan.tensor_bytes();
  report.threads = threads;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace ckpt
