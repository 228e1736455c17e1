// `ckpt quantize --int4 --method gptq|awq`: the calibration options and the run (lib/calib).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "commands/quantize.h"
#include "common.h"

namespace ckpt::cli {

struct CalibArgs {
  std::string method = "rtn", calib, act_order = "static";
  uint64_t samples = 128, seq_len = 512;
  double damp = 0.01;
  bool no_clip = false;
};

void add_calibration_options(CLI::App* cmd, CalibArgs& a);
// Whether the options ask for a calibrated method (usage errors for inconsistent options).
bool calibrated(const CalibArgs& a, bool int4);
// Calibrates, swaps the plan's producers and runs it; the exit code.
int run_calibrated(QuantizePlan& qp, const CalibArgs& a, const std::string& src, const std::string& dst,
                   const WriteOptions& w);

}  // namespace ckpt::cli
