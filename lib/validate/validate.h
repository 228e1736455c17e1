// `ckpt validate`, the phases that need no GPU: structure (headers, index, config, scales, TP
// ranks), the manifest, file checksums and a GEMM reference check on the CPU. The GPU phases
// (kernels/gpu_validate.h) start from what these leave behind.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "validate/digests.h"
#include "validate/report.h"
#include "validate/targets.h"

namespace ckpt::validate {

struct CpuPhaseOptions {
  // Hash every file on the CPU and compare with the manifest; a packed file is decoded, and so
  // checked against its container's digests, with or without a manifest.
  bool file_checksums = true;
  bool gemm_check = true;      // run every Linear weight through the CPU GEMM reference check
  uint64_t gemm_batch = 2;     // activation rows of that check
};

struct Prepared {
  Layout layout;
  ExpectedDigests expected;  // from the manifests (empty files map when there are none)
  // Files inside a packed checkpoint whose frames failed to decode in "checksums (cpu)" (each
  // failure reported there once): the GEMM check does not read them again.
  std::set<std::string> undecodable;
};

// Runs the phases "structure", "manifest", and (per options) "checksums (cpu)" and "gemm (cpu)".
// Failures land in `report`; later phases are skipped once structure failed.
Prepared run_cpu_phases(const std::string& root, Report& report, const CpuPhaseOptions& options);

// Phase "digests (cpu)": with no manifest, the digests the GPU must reproduce, computed from the
// file bytes on the CPU.
void expect_file_digests(Prepared& prepared, Report& report);

// Adapts a PhaseScope to the FailFn the checks take.
FailFn fail_into(PhaseScope& scope);

}  // namespace ckpt::validate
