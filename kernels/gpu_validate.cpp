#include "gpu_validate.h"

#include <atomic>
#include <cstdio>

#include "commands/shard_layout.h"
#include "core/sizes.h"
#include "cuda_check.h"
#include "device_loader.h"
#include "decode_warmup.h"
#include "gpu_digests.h"
#include "gpu_info.h"

namespace ckpt::cuda {

namespace {

using validate::PhaseScope;

constexpr uint64_t kFloorBytes = 512ull << 20;  // 10 ms per copy at PCIe 5 speed: plenty to time
constexpr int kFloorReps = 5;

std::string fmt(const char* f, double a, double b = 0, double c = 0, double d = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

// Load and integrity of one target on the current device. Its device copy goes to `resident`
// when the checksums passed and the runtime runs on this device (it copies its weights from
// there), else it is released at the end.
void validate_target(validate::Target& t, const validate::ExpectedDigests& expected, const H2dFloor& floor,
                     const std::string& label, validate::Report& report, const GpuValidateOptions& options,
                     std::atomic<bool>& load_failed, ResidentTensors* resident) {
  std::vector<LoadedFile> files;
  auto load = validate::run_phase(report, options.load_phase, label, "load", [&](PhaseScope& scope) {
    LoadRequest req;
    req.io = options.io;
    for (size_t i = 0; i < t.ck.files.size(); ++i) {
      req.paths.push_back(t.ck.files[i].path);
      req.first_layer.emplace_back();
      for (const auto& e : validate::file_tensors(t.ck, i))
        if (layer_index(e.name) == 0) req.first_layer.back().emplace_back(e.offset, e.offset + e.nbytes);
    }
    LoadTiming tm;
    files = load_files_to_device(req, &tm, scope.workers());
    const double gbps = tm.wall_s > 0 ? tm.bytes / tm.wall_s / 1e9 : 0;
    const bool copies = tm.io == "posix";  // gds reads land on the GPU: no separate copy to time
    // A rate only where the clock measured one (format_rate: none for an instant or empty load).
    const std::string rate = format_rate(tm.bytes, tm.wall_s), read_rate = format_rate(tm.bytes, tm.read_busy_s),
                      h2d_rate = format_rate(tm.bytes, tm.h2d_busy_s);
    // From a packed checkpoint the reader threads decode: their busy time is decode time, and the
    // rate per thread (of the unpacked bytes) says what one core decodes.
    const std::string thread_rate = format_rate(tm.bytes, tm.read_thread_s);
    const std::string decode =
        tm.decoded ? fmt("; decode busy %.3f s", tm.read_busy_s) + (read_rate.empty() ? "" : " (" + read_rate) +
                         (thread_rate.empty() ? "" : ", " + thread_rate + " per thread") + (read_rate.empty() ? "" : ")")
                   : fmt("; read busy %.3f s", tm.read_busy_s) + (read_rate.empty() ? "" : " (" + read_rate + ")");
    std::string summary =
        format_bytes(tm.bytes) + " by " + tm.io + fmt(" in %.3f s", tm.wall_s) +
        (rate.empty() ? "" : " = " + rate + fmt(" (%.0f%% of the pinned H2D floor)", 100 * gbps / floor.best_gbps)) +
        decode;
    if (copies) summary += fmt(", H2D busy %.3f s", tm.h2d_busy_s) + (h2d_rate.empty() ? "" : " (" + h2d_rate + ")");
    // Time to first layer: what layer-ordered files (rechunk) buy a server that starts on layer 0.
    if (tm.first_layer_s >= 0)
      summary += "; layer 0 (" + format_bytes(tm.first_layer_bytes) + ") resident after " +
                 fmt("%.3f s (%.0f%% of the load)", tm.first_layer_s, tm.wall_s > 0 ? 100 * tm.first_layer_s / tm.wall_s : 0);
    if (!tm.io_note.empty()) summary += "; " + tm.io_note;
    scope.phase().summary = summary;
    auto& d = scope.phase().details;
    d["bytes"] = tm.bytes;
    d["files"] = req.paths.size();
    d["io"] = tm.io;
    d["io_requested"] = options.io == IoMode::kPosix ? "posix" : options.io == IoMode::kGds ? "gds" : "auto";
    d["io_note"] = tm.io_note;
    d["wall_seconds"] = tm.wall_s;
    d["gbps"] = gbps;
    d["read_busy_seconds"] = tm.read_busy_s;
    d["packed"] = tm.decoded;
    if (tm.decoded) {
      d["decode_busy_seconds"] = tm.read_busy_s;
      d["decode_gbps"] = tm.read_busy_s > 0 ? tm.bytes / tm.read_busy_s / 1e9 : 0;
      d["decode_gbps_per_thread"] = tm.read_thread_s > 0 ? tm.bytes / tm.read_thread_s / 1e9 : 0;
    }
    d["h2d_busy_seconds"] = tm.h2d_busy_s;
    d["setup_seconds"] = tm.setup_s;
    d["floor_gbps"] = floor.best_gbps;
    d["floor_median_gbps"] = floor.median_gbps;
    d["fraction_of_floor"] = gbps / floor.best_gbps;
    d["threads"] = tm.threads;
    d["chunk_bytes"] = tm.chunk_bytes;
    if (tm.first_layer_s >= 0) {
      d["first_layer_seconds"] = tm.first_layer_s;
      d["first_layer_bytes"] = tm.first_layer_bytes;
    }
  });
  if (load.status != validate::PhaseStatus::kOk) {
    load_failed = true;
    return;
  }
  const double load_s = load.details["wall_seconds"].get<double>();

  auto integrity = validate::run_phase(report, "integrity (gpu)", label, "checksum", [&](PhaseScope& scope) {
    double hash_s = 0;
    std::vector<validate::FileDigests> got = gpu_file_digests(t.ck, files, &hash_s);
    size_t tensors = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const validate::FileDigests* want = expected.find(t.ck.files[i].path);
      if (!want) {
        scope.fail("checksum", t.ck.files[i].path, "", "no expected digests for this file");
        continue;
      }
      validate::compare_digests(t.ck.files[i].path, *want, got[i], "gpu", validate::fail_into(scope));
      tensors += got[i].tensors.size();
    }
    scope.phase().summary = count_of(tensors, "tensor") + " + " + count_of(got.size(), "header") +
                            fmt(" hashed on the GPU in %.2f ms (%.2f%% of load time)", hash_s * 1e3,
                                load_s > 0 ? 100 * hash_s / load_s : 0);
    scope.phase().details["tensors"] = tensors;
    scope.phase().details["hash_seconds"] = hash_s;
    scope.phase().details["fraction_of_load"] = hash_s / load_s;
    scope.phase().details["reference"] = expected.manifests.empty() ? "file bytes (cpu)" : "manifest";
  });
  if (resident && integrity.status == validate::PhaseStatus::kOk) resident->add(t.ck, std::move(files));
}

void validate_on_device(int device, const std::vector<validate::Target*>& targets, const validate::ExpectedDigests& expected,
                        validate::Report& report, const GpuValidateOptions& options, std::atomic<bool>& load_failed,
                        ResidentTensors* resident) {
  const std::string gpu = "gpu" + std::to_string(device);
  auto init = validate::run_phase(report, "cuda init", gpu, "cuda", [&](PhaseScope& scope) {
    CKPT_CUDA(cudaSetDevice(device));
    CKPT_CUDA(cudaFree(nullptr));  // creates the context
    scope.phase().summary = device_description(device);
  });
  if (init.status != validate::PhaseStatus::kOk) {
    load_failed = true;
    return;
  }
  H2dFloor floor;
  auto fl = validate::run_phase(report, "h2d floor", gpu, "cuda", [&](PhaseScope& scope) {
    floor = measure_pinned_h2d(kFloorBytes, kFloorReps);
    scope.phase().summary = fmt("pinned host-to-device copy of %.2f GB: best %.2f GB/s, median %.2f GB/s of %.0f",
                                floor.bytes / 1e9, floor.best_gbps, floor.median_gbps, floor.reps);
    scope.phase().details["best_gbps"] = floor.best_gbps;
    scope.phase().details["median_gbps"] = floor.median_gbps;
    scope.phase().details["bytes"] = floor.bytes;
  });
  if (fl.status != validate::PhaseStatus::kOk) {
    load_failed = true;
    return;
  }
  for (validate::Target* t : targets) {
    std::string label = t->label.empty() ? gpu : t->label + "@" + gpu;
    validate_target(*t, expected, floor, label, report, options, load_failed, resident);
  }
}

}  // namespace

GpuPhasesResult run_gpu_phases(validate::Prepared& prepared, validate::Report& report, const GpuValidateOptions& options) {
  std::vector<int> gpus = options.gpus.empty() ? std::vector<int>{0} : options.gpus;
  std::vector<std::vector<validate::Target*>> per_gpu(gpus.size());
  size_t i = 0;
  for (auto& t : prepared.layout.targets)
    if (t->opened) per_gpu[i++ % gpus.size()].push_back(t.get());
  ojson devices = ojson::array();
  for (int g : gpus) devices.push_back(device_description(g));
  report.set("gpus", devices);
  // One thread per GPU, all at once; an interruption seen by any of them stops them all.
  // The targets loaded on the first GPU, where the runtime runs, keep their verified device copy
  // for it (resident_tensors.h).
  std::atomic<bool> load_failed{false};
  ResidentTensors resident;
  parallel_for(gpus.size(), Workers{static_cast<int>(gpus.size()), report.workers().cancel}, [&](size_t g) {
    if (!per_gpu[g].empty())
      validate_on_device(gpus[g], per_gpu[g], prepared.expected, report, options, load_failed, g == 0 ? &resident : nullptr);
  });
  GpuPhasesResult result;
  if (load_failed) return result;

  // The model runtime, once for the whole layout, on the first GPU (a parallel output's ranks
  // run in turn there: running each rank on its own GPU is a separate issue).
  const std::string label = (prepared.layout.parallel ? "all ranks@gpu" : "gpu") + std::to_string(gpus[0]);
  CKPT_CUDA(cudaSetDevice(gpus[0]));
  DecodeWarmup warmup(prepared.layout, options.batch_sizes, &resident);
  validate::run_phase(report, "allocate", label, "allocate", [&](PhaseScope& s) { warmup.allocate(s); });
  result.runtime_unsupported = warmup.unsupported();
  report.set("runtime", result.runtime_unsupported.empty() ? ojson{{"ran", warmup.ready()}}
                                                           : ojson{{"ran", false}, {"unsupported", result.runtime_unsupported}});
  if (!warmup.ready()) return result;
  auto warm = validate::run_phase(report, "warm-up", label, "decode", [&](PhaseScope& s) { warmup.warm_up(s); });
  if (warm.status == validate::PhaseStatus::kFailed && warm.details.empty()) return result;  // a CUDA error, not a check
  validate::run_phase(report, "graphs", label, "graph", [&](PhaseScope& s) { warmup.graphs(s); });
  return result;
}

}  // namespace ckpt::cuda
