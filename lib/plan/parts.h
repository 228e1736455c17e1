// One plan's work split across independent runs, and put back together.
//
// `--part i/n` cuts a plan's output files into n parts of about equal bytes (whole files, the
// same cut on every machine because the plan is a pure function of the source and the options).
// Part i writes only its files, into a staging directory beside the destination
// (`DST.ckpt-parts/`), each file through the executor into its own directory so that a file is
// either complete (renamed into place by the executor, its digests in that directory's manifest)
// or absent. `finalize_parts` (run once every part has finished) checks that all parts ran the
// same plan, re-hashes every staged file against the digests its part recorded, then links the
// files into a new output directory, writes the index, config, side files and manifest, and
// renames it into place: the same bytes as one run of the command.
//
// The same staging makes a run resumable: a killed part run, started again, keeps every staged
// file whose bytes still hash to the digests recorded when it was completed and writes the rest;
// a part that already finished is a no-op. A schedulers' job array runs the parts (README:
// Splitting a job across machines).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plan/executor.h"
#include "plan/plan.h"

namespace ckpt {

struct PartSpec {
  uint32_t index = 0;  // 0-based, as Slurm's SLURM_ARRAY_TASK_ID and Kubernetes' JOB_COMPLETION_INDEX
  uint32_t count = 1;
};

// "i/n" with 0 <= i < n; nullopt for anything else.
std::optional<PartSpec> parse_part(const std::string& text);

// The part of every output file of a finalized plan: largest file first to the part with the
// fewest bytes so far (ties: the lower part, the earlier file), so parts hold about equal bytes.
std::vector<uint32_t> assign_parts(const Plan& plan, uint32_t count);

// XXH3 of everything a run's bytes depend on: the printed plan, every file header and every
// generated small file. Parts of one job must agree on it.
uint64_t plan_digest(const Plan& plan);

// DST.ckpt-parts (beside the destination; a trailing '/' of DST is ignored).
std::string staging_path(const std::string& destination);

struct PartReport {
  size_t files = 0;            // this part's output files
  size_t reused = 0;           // of those, found complete and verified in the staging directory
  uint64_t bytes_written = 0;  // tensor bytes written by this run
  uint64_t bytes_reused = 0;
  bool already_done = false;   // the part had finished before and its files verified: nothing written
  double seconds = 0;
};

// Writes part `part` of `plan` into the staging directory of `destination`. `command_line` is
// what the final manifest records (the command without --part/--resume); `opt.force` lets
// finalize replace an existing destination, which is otherwise refused before any work.
PartReport run_part(const Plan& plan, const std::string& destination, PartSpec part, const ExecOptions& opt);

// Puts the finished parts together into `destination` (see the top of this file) and removes the
// staging directory. Uses opt.threads, opt.force and opt.protected_paths.
ExecReport finalize_parts(const std::string& destination, const ExecOptions& opt);

}  // namespace ckpt
