#include "validate/report.h"

#include <cstdio>

#include "core/error.h"

namespace ckpt::validate {

std::string Failure::line() const { return check + ": " + error_line(file, tensor, message); }

const char* phase_status_name(PhaseStatus s) {
  switch (s) {
    case PhaseStatus::kOk: return "ok";
    case PhaseStatus::kFailed: return "FAILED";
    case PhaseStatus::kSkipped: return "skipped";
  }
  return "?";
}

void PhaseScope::fail(const std::string& check, const std::string& file, const std::string& tensor,
                      const std::string& message) {
  ++failures_;
  report_.add_failure({check, file, tensor, message, phase_.name, phase_.target});
}

void Report::add_phase(Phase p) {
  std::lock_guard lock(mu_);
  phases_.push_back(std::move(p));
}

void Report::add_failure(Failure f) {
  std::lock_guard lock(mu_);
  failures_.push_back(std::move(f));
}

void Report::set(const std::string& key, ojson value) {
  std::lock_guard lock(mu_);
  facts_[key] = std::move(value);
}

bool Report::ok() const {
  std::lock_guard lock(mu_);
  return failures_.empty();
}

std::vector<Failure> Report::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

std::vector<Phase> Report::phases() const {
  std::lock_guard lock(mu_);
  return phases_;
}

ojson Report::to_json() const {
  std::lock_guard lock(mu_);
  ojson j = facts_;
  j["passed"] = failures_.empty();
  ojson phases = ojson::array();
  double total = 0;
  for (const auto& p : phases_) total += p.seconds;
  for (const auto& p : phases_) {
    ojson jp = ojson::object();
    jp["phase"] = p.name;
    if (!p.target.empty()) jp["target"] = p.target;
    jp["status"] = phase_status_name(p.status);
    jp["seconds"] = p.seconds;
    jp["share"] = total > 0 ? p.seconds / total : 0.0;
    jp["summary"] = p.summary;
    jp["details"] = p.details;
    phases.push_back(jp);
  }
  j["phases"] = phases;
  j["total_seconds"] = wall_seconds();
  j["phase_seconds"] = total;  // shares are of this sum
  ojson failures = ojson::array();
  for (const auto& f : failures_) {
    ojson jf = ojson::object();
    jf["check"] = f.check;
    jf["phase"] = f.phase;
    if (!f.target.empty()) jf["target"] = f.target;
    jf["file"] = f.file;
    jf["tensor"] = f.tensor;
    jf["message"] = f.message;
    failures.push_back(jf);
  }
  j["failures"] = failures;
  return j;
}

double Report::wall_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

std::string Report::table() const {
  std::vector<Phase> phases = this->phases();
  double total = 0;
  size_t name_w = 5, target_w = 6;
  for (const auto& p : phases) {
    total += p.seconds;
    name_w = std::max(name_w, p.name.size());
    target_w = std::max(target_w, p.target.size());
  }
  std::string out;
  char buf[1024];
  std::snprintf(buf, sizeof buf, "%-*s  %-*s  %-7s  %9s  %6s  %s\n", int(name_w), "phase", int(target_w), "target",
                "status", "time", "share", "summary");
  out += buf;
  for (const auto& p : phases) {
    std::snprintf(buf, sizeof buf, "%-*s  %-*s  %-7s  %8.3fs  %5.1f%%  %s\n", int(name_w), p.name.c_str(),
                  int(target_w), p.target.empty() ? "-" : p.target.c_str(), phase_status_name(p.status), p.seconds,
                  total > 0 ? 100.0 * p.seconds / total : 0.0, p.summary.c_str());
    out += buf;
  }
  const double wall = wall_seconds();
  std::snprintf(buf, sizeof buf, "%-*s  %-*s  %-7s  %8.3fs", int(name_w), "total", int(target_w), "",
                ok() ? "ok" : "FAILED", wall);
  out += buf;
  if (total > 1.05 * wall) {
    std::snprintf(buf, sizeof buf, "          wall clock; the phases, run side by side on several GPUs, add up to %.3f s", total);
    out += buf;
  }
  out += "\n";
  return out;
}

}  // namespace ckpt::validate
