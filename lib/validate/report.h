// What `ckpt validate` found: one entry per phase (like a serving engine's start-up log) and every
// failed check, each naming the file, the tensor and the check. Printed as a table and as JSON.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/progress_observer.h"
#include "formats/strict_json.h"

namespace ckpt::validate {

struct Failure {
  std::string check;   // "checksum", "scale", "tp-agreement", "gemm", ...
  std::string file;    // file or directory the failure is about ("" when none)
  std::string tensor;  // tensor name ("" when none)
  std::string message;
  std::string phase, target;  // where it was found
  // One line: "checksum: DIR/model.safetensors: tensor 'x': digest ... differs from the manifest".
  std::string line() const;
};

enum class PhaseStatus { kOk, kFailed, kSkipped };
const char* phase_status_name(PhaseStatus s);

struct Phase {
  std::string name;     // "structure", "load", "integrity (gpu)", ...
  std::string target;   // "" or "rank-1" / "stage-0/rank-1"
  PhaseStatus status = PhaseStatus::kOk;
  double seconds = 0;
  std::string summary;  // one human line: "16.1 GB in 0.35 s, 46.0 GB/s (floor 51.2 GB/s, 90%)"
  ojson details = ojson::object();
};

// Thread-safe: ranks validated on several GPUs at once add their phases and failures here.
class Report {
 public:
  // `workers`: the threads every phase may use and the token each checks (between phases, files,
  // chunks and batches); `progress`: told each phase as a stage, with its bytes where it has some.
  explicit Report(Workers workers = {}, ProgressObserver* progress = nullptr)
      : workers_(workers), progress_(progress) {}
  const Workers& workers() const { return workers_; }
  ProgressObserver* progress() const { return progress_; }
  void add_phase(Phase p);
  void add_failure(Failure f);
  void set(const std::string& key, ojson value);  // top-level facts (directory, devices, ...)
  bool ok() const;
  std::vector<Failure> failures() const;
  std::vector<Phase> phases() const;
  ojson to_json() const;
  // The start-up-log style table: phase, target, status, time, share of the phases' time, summary.
  std::string table() const;
  // Wall-clock seconds since the report was made. Ranks validated side by side on several GPUs
  // run their phases at once, so the phases' seconds then add up to more than this.
  double wall_seconds() const;

 private:
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  const Workers workers_;
  ProgressObserver* const progress_;
  mutable std::mutex mu_;
  std::vector<Phase> phases_;
  std::vector<Failure> failures_;
  ojson facts_ = ojson::object();
};

// What a phase body gets: its Phase to fill (summary, details) and a way to record failures.
class PhaseScope {
 public:
  PhaseScope(Report& report, Phase& phase) : report_(report), phase_(phase) {}
  Phase& phase() { return phase_; }
  const Workers& workers() const { return report_.workers(); }
  ProgressObserver* progress() const { return report_.progress(); }
  void fail(const std::string& check, const std::string& file, const std::string& tensor, const std::string& message);
  size_t failures() const { return failures_; }

 private:
  Report& report_;
  Phase& phase_;
  size_t failures_ = 0;
};

// Runs `body(PhaseScope&)`, timing it as phase `name`; a ckpt::Error thrown by it becomes a
// failure of check `check`, except an interruption (Errc::kInterrupted), which propagates: the
// whole validation stops. The phase is failed when any failure was recorded in it. Returns the
// phase as added.
template <typename F>
Phase run_phase(Report& report, const std::string& name, const std::string& target, const std::string& check,
                F&& body);

}  // namespace ckpt::validate

#include "validate/report_inl.h"
