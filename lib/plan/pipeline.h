// `ckpt run`: the steps of a pipeline (convert, rechunk, cast, quantize, marlin, then shard or
// gguf, each with the options of its subcommand) composed into one plan, executed in one pass over
// the source.
//
// Each step plans exactly as its subcommand does, from a Checkpoint. For every step after the
// first that checkpoint is what opening the previous step's output directory would give —
// same tensors in the same order, same config.json, same side files — except that no output
// exists: a tensor whose bytes the previous step would copy from the source is that source
// range itself, and any other is a SourceView::kProduced view of the previous step's producer,
// whose bytes are made on demand when a later producer reads them (plan.h: ProducedTensor).
// Its directory (Checkpoint::dir) is the source's: every step carries the source's side files
// unchanged, so a step that reads them from the directory (gguf's tokenizer) reads the same bytes.
// The last step's plan, over the original source files, is the pipeline's plan: every source
// byte is read once per output that needs it (as the last step alone would), nothing is written
// but the final outputs, and the bytes are those of running the subcommands one after another.
// A step whose output is one file (gguf: DST names that file, written in OutputDir's file mode)
// must be the last. A step that cannot follow the previous one (anything after such a file or
// after shard's rank directories) and any refusal of a step's own planning stop the run before
// any data moves, naming the step.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "formats/strict_json.h"
#include "plan/plan.h"

namespace ckpt {

struct PipelineStep {
  std::string command;  // the subcommand the step runs ("cast")
  ojson options;        // the step's options as the pipeline gives them (printed, recorded)
  std::function<Plan(const Checkpoint&)> plan;  // the subcommand's planning
  // The step's output is one file, not a checkpoint directory (gguf): nothing can read it, so it
  // is the last step, and the run's destination names that file.
  bool writes_file = false;
};

// The checkpoint that opening the output directory of `plan` (a finalized plan over the files
// of `source`) would give, its tensors made by the plan's producers; `label` stands for its
// path in messages. Fails (kUnsupported) when the output is not one Hugging Face directory.
Checkpoint checkpoint_of_plan(const Plan& plan, const Checkpoint& source, const std::string& label);

// The steps composed into one finalized plan over `source` (see the top of this file). The
// plan's command is "run"; notes.pipeline lists each step's command, options and notes. A step
// after one that writes a file is refused (kInvalidArgument) before any step plans.
Plan compose_pipeline(const Checkpoint& source, const std::vector<PipelineStep>& steps);

}  // namespace ckpt
