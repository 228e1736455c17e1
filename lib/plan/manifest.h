// ckpt-manifest.json: what made an output directory and the digest of every file and tensor in
// it (see core/hash.h for how digests are defined). `ckpt validate` checks outputs against it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/strict_json.h"

namespace ckpt {

class OutputDir;

inline constexpr const char* kManifestName = "ckpt-manifest.json";
inline constexpr const char* kToolVersion = "0.1.0";

struct ManifestFile {
  std::string name;
  uint64_t size = 0;
  uint64_t header_digest = 0;  // XXH3-64 of the 8 + N header bytes
  std::vector<std::pair<std::string, uint64_t>> tensors;  // in file order
};

struct ManifestInput {
  std::string command;
  std::vector<std::string> command_line;
  std::vector<std::string> sources;
  std::vector<ManifestFile> files;
  std::vector<std::string> extras;  // small files, hashed whole from what was written
  ojson pipeline;  // `ckpt run`: the steps (plan notes "pipeline"); null otherwise
};

// Writes the manifest into the output directory and returns it.
ojson write_manifest(const OutputDir& out, const ManifestInput& in);
// A file's digest from its header digest and tensor digests (file order).
uint64_t file_digest(uint64_t header_digest, const std::vector<uint64_t>& tensor_digests);

}  // namespace ckpt
