#include "plan/executor.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "plan/check_passes.h"
#include "plan/extra_files.h"
#include "plan/manifest.h"
#include "plan/output_dir.h"
#include "plan/progress.h"

namespace ckpt {

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_signal(int) { g_interrupted.store(true); }

// One unit of work: output bytes [begin, begin + n) of one tensor.
struct Chunk {
  size_t file, tensor;
  uint64_t begin, n;
};

struct TensorState {
  std::vector<uint64_t> block_digests;
};

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

// Runs fn(i) for i in [0, n) on `threads` threads; the first exception stops the rest and is
// rethrown here.
template <class Fn>
void parallel_for(size_t n, int threads, Fn fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) return;
      if (g_interrupted.load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::make_exception_ptr(Error(Errc::kInterrupted, "", "", "interrupted"));
        stop = true;
        return;
      }
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        stop = true;
        return;
      }
    }
  };
  int t = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), n));
  std::vector<std::thread> pool;
  for (int k = 1; k < t; ++k) pool.emplace_back(worker);
  if (t > 0) worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

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

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

ExecReport execute(const Plan& plan, const std::string& destination, const ExecOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  const int threads = resolve_threads(opt.threads);
  OutputDir out(destination, opt.force, opt.protected_paths);
  SourceReader reader(plan.sources);

  // Headers first: every size is known, so each file gets its final length and header now.
  std::vector<File> files;
  for (const auto& f : plan.files) {
    if (f.offsets.size() != f.tensors.size()) throw std::logic_error("execute: plan was not finalized");
    File file = File::create(new_output_path(out, f.name));
    file.truncate(f.size);
    const std::string head = file_prefix(f);
    file.pwrite_exact(head.data(), head.size(), 0);
    files.push_back(std::move(file));
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

  Progress progress(plan.tensor_bytes(), opt.progress);
  parallel_for(to_prepare.size(), threads, [&](size_t i) { to_prepare[i]->prepare(reader); });

  // Source checks (torch zip CRCs) take the bytes the verbatim copies read, while each block is
  // in cache, and read only the rest themselves once every chunk is done.
  const CheckPasses checks(plan.checks);
  parallel_for(chunks.size(), threads, [&](size_t ci) {
    const Chunk& c = chunks[ci];
    const OutputTensor& t = plan.files[c.file].tensors[c.tensor];
    const uint64_t dst_off = plan.files[c.file].offsets[c.tensor] + c.begin;
    std::vector<uint64_t> digests;
    if (auto v = t.producer->verbatim(c.begin, c.n)) {
      reader.copy_hashed(v->file, v->offset, files[c.file], dst_off, c.n, digests,
                         [&](uint64_t at, const uint8_t* data, size_t n) { checks.feed(v->file, at, data, n); });
    } else {
      // Produce, hash and write one hash block at a time, so each block stays in the CPU cache
      // from the producer to the write; a whole chunk would go through DRAM twice more, which
      // made `ckpt cast` (bench_cast.sh) several times slower than cp on a 2-core machine.
      thread_local std::vector<uint8_t> buf;
      buf.resize(kHashBlockBytes);
      for (uint64_t off = 0; off < c.n; off += kHashBlockBytes) {
        const uint64_t n = std::min(kHashBlockBytes, c.n - off);
        t.producer->produce(reader, c.begin + off, n, buf.data());
        digests.push_back(hash_bytes(buf.data(), n));
        files[c.file].pwrite_exact(buf.data(), n, dst_off + off);
      }
    }
    auto& blocks = state[c.file][c.tensor].block_digests;
    std::copy(digests.begin(), digests.end(), blocks.begin() + static_cast<ptrdiff_t>(c.begin / kHashBlockBytes));
    progress.add(c.n);
  });
  parallel_for(checks.size(), threads, [&](size_t i) { checks.finish(i, reader); });
  progress.finish();

  // Extras: generated files and carried side files.
  for (const auto& e : plan.extras) {
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
    const std::string head = file_prefix(f);
    mf.header_digest = hash_bytes(head.data(), head.size());
    for (size_t ti = 0; ti < f.tensors.size(); ++ti)
      mf.tensors.push_back({f.tensors[ti].name, combine_digests(state[fi][ti].block_digests)});
    mi.files.push_back(std::move(mf));
  }
  for (const auto& e : plan.extras) mi.extras.push_back(e.name);
  ExecReport report;
  report.manifest = write_manifest(out, mi);

  files.clear();
  out.commit();
  report.tensors = plan.tensor_count();
  report.tensor_bytes = plan.tensor_bytes();
  report.threads = threads;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace ckpt
