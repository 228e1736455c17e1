// run_phase's body (a template, so it lives in a header).
#pragma once

#include <chrono>

#include "core/error.h"

namespace ckpt::validate {

template <typename F>
Phase run_phase(Report& report, const std::string& name, const std::string& target, const std::string& check,
                F&& body) {
  report.workers().check();
  progress_begin(report.progress(), name, 0);
  Phase phase;
  phase.name = name;
  phase.target = target;
  PhaseScope scope(report, phase);
  auto start = std::chrono::steady_clock::now();
  try {
    body(scope);
  } catch (const Error& e) {
    if (e.code() == Errc::kInterrupted) throw;
    scope.fail(check, e.file(), e.tensor(), e.rule());
  }
  phase.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (scope.failures() != 0) phase.status = PhaseStatus::kFailed;
  report.add_phase(phase);
  return phase;
}

}  // namespace ckpt::validate
