// The files of a checkpoint directory, wherever they are: on disk, or inside the directory's
// packed container (DIR/checkpoint.ckptpack, formats/packed_source.h), which then holds all of
// them: open_checkpoint reads such a directory from its container, and every lookup here does the
// same. The paths given back are those the readers take (open_source_bytes, SourceReader):
// "DIR/name" on disk, "DIR/checkpoint.ckptpack/name" inside a container.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ckpt {

// DIR/checkpoint.ckptpack when DIR is a directory holding one.
std::optional<std::string> packed_container_of(const std::string& dir);

// The path of file `rel` of directory `dir`, or nullopt when there is none. `rel` may go down
// into subdirectories ("rank-0/model.safetensors", as a TP root's manifest lists them), each of
// which may be packed on its own (`ckpt pack` of a TP/PP root packs every rank).
std::optional<std::string> locate_checkpoint_file(const std::string& dir, const std::string& rel);

// The names of the regular files of `dir` (of its container, when packed), sorted.
std::vector<std::string> checkpoint_file_names(const std::string& dir);

}  // namespace ckpt
