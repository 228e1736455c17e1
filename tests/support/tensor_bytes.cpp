#include "tensor_bytes.h"

#include <stdexcept>

#include "core/file_io.h"
#include "formats/safetensors.h"

namespace ckpt::test {

TensorBytes load_tensor_bytes(const std::string& safetensors_path, const std::string& name) {
  File f = File::open_read(safetensors_path);
  SafetensorsHeader h = read_safetensors_header(f);
  for (const auto& t : h.tensors) {
    if (t.name != name) continue;
    TensorBytes out{t.dtype, t.shape, std::vector<uint8_t>(t.end - t.begin)};
    if (!out.bytes.empty()) f.pread_exact(out.bytes.data(), out.bytes.size(), h.data_start() + t.begin);
    return out;
  }
  throw std::runtime_error(safetensors_path + ": no tensor '" + name + "'");
}

}  // namespace ckpt::test
