#include "formats/torch_checkpoint.h"

#include "core/error.h"

namespace ckpt {

void add_torch_file(Checkpoint&, const std::string& path, const OpenOptions&) {
  fail(Errc::kUnsupported, path, "", "reading PyTorch files is not available in this build");
}

}  // namespace ckpt
