#include "device_loader.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>

#include "core/error.h"
#include "plan/source_reader.h"

namespace ckpt::cuda {

namespace {

// 8 MiB: measured on the H100 machine (BENCHMARKS.md), 8 MiB chunks loaded 16 GB at 81% of the
// pinned H2D floor where 16 and 64 MiB reached 77-79% (shorter start and end of the pipeline).
constexpr uint64_t kDefaultChunk = 8ull << 20;
constexpr int kSlotsPerThread = 3;

// CKPT_LOAD_CHUNK_MB overrides the default chunk, for tuning on a new machine.
uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v, &end, 10);
  return (*end == 0 && n > 0) ? n : fallback;
}

using Clock = std::chrono::steady_clock;

// Total length of the union of [begin, end) intervals.
double union_length(std::vector<std::pair<double, double>> iv) {
  std::sort(iv.begin(), iv.end());
  double total = 0, cur_b = 0, cur_e = -1;
  for (const auto& [b, e] : iv) {
    if (b > cur_e) {
      if (cur_e > cur_b) total += cur_e - cur_b;
      cur_b = b;
      cur_e = e;
    } else {
      cur_e = std::max(cur_e, e);
    }
  }
  if (cur_e > cur_b) total += cur_e - cur_b;
  return total;
}

struct Chunk {
  size_t file;
  uint64_t offset, len;
};

}  // namespace

std::vector<LoadedFile> load_files_to_device(const std::vector<std::string>& paths, LoadTiming* timing,
                                             const Workers& workers) {
  auto setup_start = Clock::now();
  const uint64_t kChunk = env_or("CKPT_LOAD_CHUNK_MB", kDefaultChunk >> 20) << 20;
  // Files on disk are read with pread; files inside a packed checkpoint are decoded by the same
  // reader threads, so decoding overlaps the copies as reading does. A packed file's chunks end at
  // group boundaries (SourceReader::read_end), so no group is decoded twice.
  const SourceReader reader(paths);
  std::vector<LoadedFile> out;
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < paths.size(); ++i) {
    const int file = static_cast<int>(i);
    const uint64_t size = reader.size(file);
    out.push_back({paths[i], DeviceBuffer(size)});
    for (uint64_t off = 0; off < size;) {
      const uint64_t end = reader.read_end(file, off, std::min(size, off + kChunk));
      chunks.push_back({i, off, end - off});
      off = end;
    }
    timing->bytes += size;
    timing->decoded |= reader.packed(file);
  }
  // The caller's thread count, or one per CPU up to 16 (more readers do not load faster).
  const int threads = workers.threads > 0 ? workers.threads : std::min(workers.count(), 16);
  const int used = static_cast<int>(std::min<size_t>(threads, std::max<size_t>(chunks.size(), 1)));
  std::vector<PinnedBuffer> slots;
  for (int i = 0; i < used * kSlotsPerThread; ++i) slots.emplace_back(kChunk);
  std::vector<Stream> streams;
  for (int i = 0; i < used; ++i) streams.push_back(new_stream());
  std::vector<Event> starts, stops;
  for (size_t i = 0; i < chunks.size(); ++i) {
    starts.push_back(new_event());
    stops.push_back(new_event());
  }
  const Event base = new_event();
  timing->setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();

  const auto t0 = Clock::now();
  CKPT_CUDA(cudaEventRecord(base, streams[0]));
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::vector<std::pair<double, double>> reads;
  std::exception_ptr error;
  int device = 0;
  CKPT_CUDA(cudaGetDevice(&device));
  auto worker = [&](int t) {
    try {
      CKPT_CUDA(cudaSetDevice(device));
      std::vector<long> slot_chunk(kSlotsPerThread, -1);  // the chunk whose copy last used each slot
      std::vector<std::pair<double, double>> my_reads;
      for (int n = 0;; ++n) {
        workers.check();
        size_t c = next.fetch_add(1);
        if (c >= chunks.size()) break;
        const int slot = n % kSlotsPerThread;
        if (slot_chunk[slot] >= 0) CKPT_CUDA(cudaEventSynchronize(stops[slot_chunk[slot]]));
        uint8_t* host = slots[t * kSlotsPerThread + slot].data();
        const Chunk& ch = chunks[c];
        double rb = std::chrono::duration<double>(Clock::now() - t0).count();
        reader.read(static_cast<int>(ch.file), host, ch.len, ch.offset);
        my_reads.emplace_back(rb, std::chrono::duration<double>(Clock::now() - t0).count());
        CKPT_CUDA(cudaEventRecord(starts[c], streams[t]));
        CKPT_CUDA(cudaMemcpyAsync(out[ch.file].bytes.data() + ch.offset, host, ch.len, cudaMemcpyHostToDevice, streams[t]));
        CKPT_CUDA(cudaEventRecord(stops[c], streams[t]));
        slot_chunk[slot] = static_cast<long>(c);
      }
      CKPT_CUDA(cudaStreamSynchronize(streams[t]));
      std::lock_guard lock(mu);
      reads.insert(reads.end(), my_reads.begin(), my_reads.end());
    } catch (...) {
      std::lock_guard lock(mu);
      if (!error) error = std::current_exception();
      next = chunks.size();
    }
  };
  // One item per reader thread (each owns its stream and staging slots), all running at once.
  parallel_for(static_cast<size_t>(used), Workers{used, nullptr}, [&](size_t t) { worker(static_cast<int>(t)); });
  timing->wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!error) {
    std::vector<std::pair<double, double>> copies;
    for (size_t i = 0; i < chunks.size(); ++i) {
      float b = 0, e = 0;
      CKPT_CUDA(cudaEventElapsedTime(&b, base, starts[i]));
      CKPT_CUDA(cudaEventElapsedTime(&e, base, stops[i]));
      copies.emplace_back(b / 1e3, e / 1e3);
    }
    timing->h2d_busy_s = union_length(copies);
    timing->read_busy_s = union_length(reads);
    for (const auto& [b, e] : reads) timing->read_thread_s += e - b;
  }
  timing->threads = used;
  timing->chunk_bytes = kChunk;
  if (error) std::rethrow_exception(error);
  return out;
}

H2dFloor measure_pinned_h2d(uint64_t bytes, int reps) {
  PinnedBuffer host(bytes);  // cudaHostAlloc pins (and so faults in) every page
  DeviceBuffer dev(bytes);
  const Stream stream = new_stream();
  const Event b = new_event(), e = new_event();
  std::vector<double> gbps;
  for (int r = -1; r < reps; ++r) {
    CKPT_CUDA(cudaEventRecord(b, stream));
    CKPT_CUDA(cudaMemcpyAsync(dev.data(), host.data(), bytes, cudaMemcpyHostToDevice, stream));
    CKPT_CUDA(cudaEventRecord(e, stream));
    CKPT_CUDA(cudaEventSynchronize(e));
    float ms = 0;
    CKPT_CUDA(cudaEventElapsedTime(&ms, b, e));
    if (r >= 0) gbps.push_back(bytes / (ms / 1e3) / 1e9);
  }
  std::sort(gbps.begin(), gbps.end());
  H2dFloor f;
  f.bytes = bytes;
  f.reps = reps;
  f.best_gbps = gbps.back();
  f.median_gbps = gbps[gbps.size() / 2];
  return f;
}

}  // namespace ckpt::cuda
