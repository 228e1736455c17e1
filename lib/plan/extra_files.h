// Writing into an output directory by a plan's relative names: the path of a new file (creating
// the directories a name like "rank-0/model.safetensors" needs) and the small files that travel
// with the tensors (generated index/config text, or a copy of a source side file).
#pragma once

#include <string>

#include "plan/output_dir.h"
#include "plan/plan.h"

namespace ckpt {

// out.path_of(name), with the directories of `name` created inside the temporary directory.
std::string new_output_path(const OutputDir& out, const std::string& name);

// Writes one ExtraFile into `out`.
void write_extra_file(const OutputDir& out, const ExtraFile& e);

}  // namespace ckpt
