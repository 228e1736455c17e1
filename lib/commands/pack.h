// `ckpt pack` / `ckpt unpack`: lossless zstd packing of a checkpoint directory for transport and
// storage (container: formats/pack_format.h; codec: formats/pack_codec.h). Every directory of the
// source that holds files (the root, and each rank-r/ or stage-s/rank-r/ of a TP/PP output)
// becomes one checkpoint.ckptpack in the same place under the destination, holding every file of
// that directory byte for byte.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "formats/pack_format.h"
#include "formats/strict_json.h"

#include "core/cancel.h"

namespace ckpt {

struct PackOptions {
  int level = 1;        // zstd level of every frame (see BENCHMARKS.md: higher levels gain nothing here)
  int threads = 0;      // 0: one per online CPU
  bool force = false;   // replace an existing destination
  bool sync = true;     // fsync the output before it is moved into place (plan/output_dir.h)
  const CancelToken* cancel = nullptr;  // checked before every group (nullptr: never cancelled)
};

// Original and packed bytes of a set of regions.
struct PackTally {
  uint64_t original = 0, packed = 0;
  void add(uint64_t o, uint64_t p) {
    original += o;
    packed += p;
  }
  double ratio() const { return packed ? static_cast<double>(original) / static_cast<double>(packed) : 0.0; }
};

// The tensor class of a Hugging Face name, for the ratio report: "embeddings" (embed_tokens,
// lm_head), "attention", "mlp" (dense and MoE experts, routers), "norms", or "other".
std::string tensor_class(const std::string& name);

// Ratios of one container: by dtype (non-tensor bytes as "other bytes"), by tensor class, total.
struct PackRatios {
  std::map<std::string, PackTally> by_dtype, by_class;
  PackTally total;
};
PackRatios pack_ratios(const PackIndex& index);
ojson pack_ratios_json(const PackRatios& r);

struct PackReport {
  std::vector<std::string> containers;  // relative paths of the containers written
  PackRatios ratios;                     // over all of them
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;
  int threads = 0;
};

PackReport pack_checkpoint(const std::string& source, const std::string& destination, const PackOptions& options);

struct UnpackReport {
  size_t files = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;
  int threads = 0;
};

// Writes every file of every container under `packed` back, byte for byte, into `destination`
// (atomically, as pack). Each group is checked against its recorded length and digest as it is
// decoded, and each file's digest is the combine of its groups' (checked when the container is
// opened), so a file is written only from bytes that match what pack read. `level` is unused.
UnpackReport unpack_checkpoint(const std::string& packed, const std::string& destination, const PackOptions& options);

}  // namespace ckpt
