#include "plan/extra_files.h"

#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"

namespace ckpt {

std::string new_output_path(const OutputDir& out, const std::string& name) {
  std::string path = out.path_of(name);
  if (name.find('/') != std::string::npos) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (ec) fail(Errc::kIo, path, "", "cannot create the directory: " + ec.message());
  }
  return path;
}

void write_extra_file(const OutputDir& out, const ExtraFile& e) {
  if (e.content) {
    write_text_file(new_output_path(out, e.name), *e.content);
    return;
  }
  File src = File::open_read(*e.copy_from);
  File dst = File::create(new_output_path(out, e.name));
  copy_file_bytes(src, 0, dst, 0, src.size());
  dst.close();  // a deferred write error is reported here, not lost in the destructor
}

}  // namespace ckpt
