#include "device_loader.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "core/file_io.h"
#include "core/sizes.h"
#include "gds_reader.h"
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
  bool first_layer;  // holds bytes of a first-layer tensor
};

// auto: the sample both ways are timed on, in chunks (128 MiB at the default chunk size): long
// enough to see a bandwidth, short against a model's load.
constexpr size_t kAutoSampleChunks = 16;

bool overlaps(const std::vector<std::pair<uint64_t, uint64_t>>& ranges, uint64_t b, uint64_t e) {
  for (const auto& [rb, re] : ranges)
    if (rb < e && b < re) return true;
  return false;
}

// One load: the files, their device buffers and chunks, and what each way of reading needs
// (pinned slots and streams for posix; the cuFile session, handles and registrations for gds).
class Loader {
 public:
  // Files on disk are read with pread; files inside a packed checkpoint are decoded by the same
  // reader threads, so decoding overlaps the copies as reading does. A packed file's chunks end at
  // group boundaries (SourceReader::read_end), so no group is decoded twice.
  Loader(const LoadRequest& req, LoadTiming* timing, const Workers& workers)
      : timing_(*timing), workers_(workers), reader_(req.paths) {
    chunk_ = env_or("CKPT_LOAD_CHUNK_MB", kDefaultChunk >> 20) << 20;
    for (size_t i = 0; i < req.paths.size(); ++i) {
      const int file = static_cast<int>(i);
      const uint64_t size = reader_.size(file);
      out_.push_back({req.paths[i], DeviceBuffer(size)});
      const auto* layer = req.first_layer.size() == req.paths.size() ? &req.first_layer[i] : nullptr;
      for (uint64_t off = 0; off < size;) {
        const uint64_t end = reader_.read_end(file, off, std::min(size, off + chunk_));
        chunks_.push_back({i, off, end - off, layer && overlaps(*layer, off, end)});
        off = end;
      }
      if (layer)
        for (const auto& [b, e] : *layer) timing_.first_layer_bytes += e - b;
      timing_.bytes += size;
      timing_.decoded |= reader_.packed(file);
    }
    // The caller's thread count, or one per CPU up to 16 (more readers do not load faster).
    const int threads = workers.threads > 0 ? workers.threads : std::min(workers.count(), 16);
    used_ = static_cast<int>(std::min<size_t>(threads, std::max<size_t>(chunks_.size(), 1)));
    for (size_t i = 0; i < chunks_.size(); ++i) {
      starts_.push_back(new_event());
      stops_.push_back(new_event());
    }
    done_s_.assign(chunks_.size(), 0);
    base_ = new_event();
    CKPT_CUDA(cudaGetDevice(&device_));
  }

  size_t chunks() const { return chunks_.size(); }
  uint64_t bytes_of_first(size_t n) const {
    uint64_t b = 0;
    for (size_t c = 0; c < n; ++c) b += chunks_[c].len;
    return b;
  }
  uint64_t chunk_bytes() const { return chunk_; }
  int threads() const { return used_; }
  std::vector<LoadedFile> take() { return std::move(out_); }

  void prepare_posix() {
    if (!streams_.empty()) return;
    for (int i = 0; i < used_ * kSlotsPerThread; ++i) slots_.emplace_back(chunk_);
    for (int i = 0; i < used_; ++i) streams_.push_back(new_stream());
  }

  // Opens cuFile and registers every file and device buffer; on failure releases what it
  // registered and returns why (the load then reads with posix).
  std::string prepare_gds() {
    if (timing_.decoded) return "a packed checkpoint is decoded on the host";
    try {
      driver_.emplace();
      const bool direct = nvidia_fs_loaded();
      for (const auto& f : out_) gds_files_.push_back(std::make_unique<GdsFile>(f.path, direct));
    } catch (const Error& e) {
      gds_files_.clear();
      driver_.reset();
      return error_line(e.file(), e.tensor(), e.rule());
    }
    // Unregistered buffers still load (cuFile bounces them through its own); say so.
    try {
      for (const auto& f : out_) gds_buffers_.emplace_back(f.bytes.data(), f.bytes.size());
    } catch (const Error& e) {
      gds_buffers_.clear();
      note("device buffers not registered (" + e.rule() + "): cuFile bounces the reads");
    }
    return "";
  }
  const char* gds_mode() const { return driver_->mode(); }

  void note(const std::string& n) { timing_.io_note += (timing_.io_note.empty() ? "" : "; ") + n; }

  // Reads chunks [first, last) on every thread, with cuFile (gds) or pread + copy (posix); returns
  // the wall time. The main pass (all chunks) also fills the busy and first-layer times.
  double pass(bool gds, size_t first, size_t last) {
    const bool main = first == 0 && last == chunks_.size();
    const auto t0 = Clock::now();
    if (!gds) CKPT_CUDA(cudaEventRecord(base_, streams_[0]));
    std::atomic<size_t> next{first};
    std::mutex mu;
    std::vector<std::pair<double, double>> reads;
    std::exception_ptr error;
    auto since = [&t0] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    auto worker = [&](int t) {
      try {
        CKPT_CUDA(cudaSetDevice(device_));
        std::vector<long> slot_chunk(kSlotsPerThread, -1);  // the chunk whose copy last used each slot
        std::vector<std::pair<double, double>> my_reads;
        for (int n = 0;; ++n) {
          workers_.check();
          const size_t c = next.fetch_add(1);
          if (c >= last) break;
          const Chunk& ch = chunks_[c];
          uint8_t* dev = out_[ch.file].bytes.data();
          if (gds) {
            const double rb = since();
            gds_files_[ch.file]->read(dev, ch.len, ch.offset, ch.offset);  // on the GPU when it returns
            done_s_[c] = since();
            my_reads.emplace_back(rb, done_s_[c]);
            continue;
          }
          const int slot = n % kSlotsPerThread;
          if (slot_chunk[slot] >= 0) CKPT_CUDA(cudaEventSynchronize(stops_[slot_chunk[slot]]));
          uint8_t* host = slots_[t * kSlotsPerThread + slot].data();
          const double rb = since();
          reader_.read(static_cast<int>(ch.file), host, ch.len, ch.offset);
          my_reads.emplace_back(rb, since());
          CKPT_CUDA(cudaEventRecord(starts_[c], streams_[t]));
          CKPT_CUDA(cudaMemcpyAsync(dev + ch.offset, host, ch.len, cudaMemcpyHostToDevice, streams_[t]));
          CKPT_CUDA(cudaEventRecord(stops_[c], streams_[t]));
          slot_chunk[slot] = static_cast<long>(c);
        }
        if (!gds) CKPT_CUDA(cudaStreamSynchronize(streams_[t]));
        std::lock_guard lock(mu);
        reads.insert(reads.end(), my_reads.begin(), my_reads.end());
      } catch (...) {
        // Copies this thread queued may still be reading its staging slots, which the caller's
        // unwinding frees: wait for them first (their own error, if any, is not the one to report).
        if (!gds) (void)cudaStreamSynchronize(streams_[t]);
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        next = last;
      }
    };
    // One item per reader thread (each owns its stream and staging slots), all running at once.
    parallel_for(static_cast<size_t>(used_), Workers{used_, nullptr}, [&](size_t t) { worker(static_cast<int>(t)); });
    const double wall = since();
    if (error) std::rethrow_exception(error);
    if (main) {
      timing_.wall_s = wall;
      timing_.read_busy_s = union_length(reads);
      for (const auto& [b, e] : reads) timing_.read_thread_s += e - b;
      if (!gds) {
        std::vector<std::pair<double, double>> copies;
        for (size_t i = 0; i < chunks_.size(); ++i) {
          float b = 0, e = 0;
          CKPT_CUDA(cudaEventElapsedTime(&b, base_, starts_[i]));
          CKPT_CUDA(cudaEventElapsedTime(&e, base_, stops_[i]));
          copies.emplace_back(b / 1e3, e / 1e3);
          done_s_[i] = e / 1e3;
        }
        timing_.h2d_busy_s = union_length(copies);
      }
      for (size_t i = 0; i < chunks_.size(); ++i)
        if (chunks_[i].first_layer) timing_.first_layer_s = std::max(timing_.first_layer_s, done_s_[i]);
    }
    return wall;
  }

 private:
  LoadTiming& timing_;
  const Workers& workers_;
  uint64_t chunk_ = kDefaultChunk;
  SourceReader reader_;
  std::vector<LoadedFile> out_;
  std::vector<Chunk> chunks_;
  int used_ = 1, device_ = 0;
  std::vector<Event> starts_, stops_;
  Event base_;
  std::vector<double> done_s_;  // per chunk: when its bytes were on the GPU, from the pass's start
  std::vector<PinnedBuffer> slots_;
  std::vector<Stream> streams_;
  // Members are destroyed in reverse order: the buffer registrations, then the file handles, then
  // the driver session (cuFile wants them released before cuFileDriverClose).
  std::optional<GdsDriver> driver_;
  std::vector<std::unique_ptr<GdsFile>> gds_files_;
  std::vector<GdsBuffer> gds_buffers_;
};

std::string gbps_text(uint64_t bytes, double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB/s", s > 0 ? bytes / s / 1e9 : 0.0);
  return buf;
}

}  // namespace

IoMode parse_io_mode(const std::string& text) {
  if (text == "posix") return IoMode::kPosix;
  if (text == "gds") return IoMode::kGds;
  if (text == "auto") return IoMode::kAuto;
  fail(Errc::kInvalidArgument, "", "", "--io '" + text + "': must be posix, gds or auto");
}

std::vector<LoadedFile> load_files_to_device(const LoadRequest& req, LoadTiming* timing, const Workers& workers) {
  const auto setup_start = Clock::now();
  Loader loader(req, timing, workers);
  bool gds = false;
  if (req.io != IoMode::kPosix) {
    const std::string why_not = loader.prepare_gds();
    gds = why_not.empty();
    if (!gds) loader.note(std::string(req.io == IoMode::kAuto ? "auto chose posix: " : "") + "gds unavailable, read with posix: " + why_not);
  }
  if (!gds || req.io == IoMode::kAuto) loader.prepare_posix();
  timing->setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();
  if (gds && req.io == IoMode::kAuto) {
    // The sample is read once untimed first, so that both timed reads find it where the other
    // did (in the page cache, or not) and neither pays for the first touch.
    const size_t n = std::min(kAutoSampleChunks, loader.chunks());
    const uint64_t bytes = loader.bytes_of_first(n);
    loader.pass(false, 0, n);
    const double posix_s = loader.pass(false, 0, n), gds_s = loader.pass(true, 0, n);
    gds = gds_s < posix_s;
    loader.note(std::string("auto chose ") + (gds ? "gds" : "posix") + ": on a " + format_bytes(bytes) + " sample " +
                loader.gds_mode() + " " + gbps_text(bytes, gds_s) + ", posix " + gbps_text(bytes, posix_s));
  }
  timing->io = gds ? loader.gds_mode() : "posix";
  loader.pass(gds, 0, loader.chunks());
  timing->threads = loader.threads();
  timing->chunk_bytes = loader.chunk_bytes();
  return loader.take();
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
