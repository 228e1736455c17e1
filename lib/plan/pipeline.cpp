#include "plan/pipeline.h"

#include <algorithm>

#include "core/error.h"
#include "core/file_io.h"

namespace ckpt {

namespace {

// A tensor of the previous step's output as the next step sees it: the view itself when the
// producer is a plain copy of one contiguous view of the same shape (so copies never nest, and
// a chain of copies still reaches the kernel's copy_file_range), else the producer's bytes.
SourceView view_of(const OutputTensor& t) {
  if (const auto* vp = dynamic_cast<const ViewProducer*>(t.producer.get())) {
    if (!vp->op() && vp->pieces().size() == 1) {
      const SourceView& p = vp->pieces()[0];
      if (p.dtype == t.dtype && p.shape == t.shape && p.is_contiguous()) return p;
    }
  }
  SourceView v;
  v.file = SourceView::kProduced;
  v.dtype = t.dtype;
  v.shape = t.shape;
  v.produced = std::make_shared<ProducedTensor>(t.producer);
  return v;
}

std::string step_label(size_t k, const PipelineStep& s) { return "step " + std::to_string(k + 1) + " (" + s.command + ")"; }

}  // namespace

Checkpoint checkpoint_of_plan(const Plan& plan, const Checkpoint& source, const std::string& label) {
  for (const auto& f : plan.files)
    if (f.name.find('/') != std::string::npos)
      fail(Errc::kUnsupported, label, "",
           "writes one directory per rank (" + f.name + "), which no step reads: it must be the last step");
  Checkpoint ck;
  ck.path = label;
  // The source's directory (the top of pipeline.h): the side files are its own, so a step that
  // reads them there (gguf's tokenizer) reads what the previous step's output would hold. gguf's
  // default general.name, the directory's name, is then the source's, as `ckpt gguf SRC` gives.
  ck.dir = source.dir;
  ck.files = source.files;
  ck.checks = source.checks;
  // As open_checkpoint: the files in name order (an index lists them sorted; a single file is
  // model.safetensors), each file's tensors in data order (the plan's finalized order).
  std::vector<const OutputFile*> files;
  for (const auto& f : plan.files) files.push_back(&f);
  std::sort(files.begin(), files.end(), [](const OutputFile* a, const OutputFile* b) { return a->name < b->name; });
  for (const OutputFile* f : files)
    for (const auto& t : f->tensors) ck.tensors.push_back({t.name, view_of(t)});
  // Side files: every small file but the index (is_weight_file_name), sorted by name; config.json
  // parsed as open_checkpoint parses it.
  for (const auto& e : plan.extras) {
    if (e.name.empty() || e.name[0] == '.' || e.name.find('/') != std::string::npos) continue;
    if (e.name == "model.safetensors.index.json") ck.index_file = label + "/" + e.name;
    if (is_weight_file_name(e.name)) continue;
    SideFile s;
    s.name = e.name;
    if (e.content) s.content = e.content;
    else s.path = *e.copy_from;
    if (e.name == "config.json") {
      StrictJsonResult r = parse_strict_json(side_file_text(s));
      if (!r.ok) fail(Errc::kInvalidArgument, label + "/config.json", "", "config.json is not valid JSON: " + r.error);
      ck.config = std::move(r.value);
    }
    ck.side_files.push_back(std::move(s));
  }
  std::sort(ck.side_files.begin(), ck.side_files.end(), [](const SideFile& a, const SideFile& b) { return a.name < b.name; });
  return ck;
}

Plan compose_pipeline(const Checkpoint& source, const std::vector<PipelineStep>& steps) {
  if (steps.empty()) fail(Errc::kInvalidArgument, "", "", "the pipeline has no steps");
  for (size_t k = 1; k < steps.size(); ++k)
    if (steps[k - 1].writes_file)
      fail(Errc::kInvalidArgument, "", "",
           step_label(k, steps[k]) + ": cannot follow " + step_label(k - 1, steps[k - 1]) +
               ", which writes one file that no step reads: it must be the last step");
  Plan plan;
  ojson listed = ojson::array();
  for (size_t k = 0; k < steps.size(); ++k) {
    const std::string label = step_label(k, steps[k]);
    try {
      if (k == 0) {
        plan = steps[k].plan(source);
      } else {
        const Checkpoint ck = checkpoint_of_plan(plan, source, step_label(k - 1, steps[k - 1]) + " output");
        plan = steps[k].plan(ck);
      }
    } catch (const Error& e) {
      throw Error(e.code(), e.file(), e.tensor(), label + ": " + e.rule());
    }
    ojson step = ojson::object();
    step["command"] = steps[k].command;
    step["options"] = steps[k].options;
    step["notes"] = plan.notes;
    listed.push_back(step);
  }
  plan.command = "run";
  plan.notes = ojson::object();
  plan.notes["pipeline"] = listed;
  return plan;
}

}  // namespace ckpt
