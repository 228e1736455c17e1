#include "formats/torch_zip.h"

#include "core/error.h"
#include "formats/pickle/unpickler.h"
#include "formats/zip_reader.h"

namespace ckpt {

namespace {

std::string read_record(const ByteSource& src, const ZipRecord& r) {
  std::string s(r.size, '\0');
  src.read(r.data_offset, r.size, s.data());
  return s;
}

}  // namespace

std::vector<TorchTensor> read_torch_zip(const File& f, const std::string& key, bool verify_crc, int file_index) {
  const std::string& path = f.path();
  FileSource src(f);
  ZipArchive zip = read_zip_directory(src);
  if (zip.records.empty()) fail(Errc::kTorchInvalid, path, "", "zip archive has no records");
  // Every record sits under one folder, named after the first record (never assume "archive/").
  const std::string& first = zip.records[0].name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) fail(Errc::kTorchInvalid, path, "", "first zip record '" + first + "' is not inside a folder; not a torch file");
  const std::string prefix = first.substr(0, slash + 1);
  if (zip.find(prefix + "constants.pkl"))
    fail(Errc::kZipUnsupported, path, "", "this is a TorchScript archive (torch.jit.save), not a state dict");
  const ZipRecord* pkl = zip.find(prefix + "data.pkl");
  if (!pkl) fail(Errc::kTorchInvalid, path, "", "no record '" + prefix + "data.pkl'; not a torch.save file");
  if (const ZipRecord* bo = zip.find(prefix + "byteorder")) {
    std::string order = read_record(src, *bo);
    if (order != "little")
      fail(Errc::kUnsupported, path, "", "byteorder is '" + order.substr(0, 16) + "'; only little-endian files are supported");
  }
  if (verify_crc) verify_zip_crcs(src, zip);
  if (pkl->size > kMaxPickleBytes) fail(Errc::kTorchInvalid, path, "", "data.pkl is larger than 1 GiB");
  const std::string pickle_bytes = read_record(src, *pkl);

  pickle::Arena arena;
  pickle::Source ps{reinterpret_cast<const uint8_t*>(pickle_bytes.data()), pickle_bytes.size(), path, prefix + "data.pkl"};
  const pickle::Object* root = pickle::unpickle(ps, 0, arena);
  auto resolve = [&](const pickle::StorageRef& s) {
    if (s.view_numel) fail(Errc::kTorchInvalid, path, "", "storage '" + s.key + "' has legacy view metadata inside a zip file");
    const std::string name = prefix + "data/" + s.key;
    const ZipRecord* r = zip.find(name);
    if (!r) fail(Errc::kTorchInvalid, path, "", "record '" + name + "' for storage '" + s.key + "' is missing");
    const auto expect = checked_nbytes(s.dtype, s.numel);
    if (!expect || r->size != *expect)
      fail(Errc::kTorchInvalid, path, "",
           "record '" + name + "' holds " + std::to_string(r->size) + " bytes, its storage declares " + std::to_string(s.numel) +
               " elements of " + std::string(dtype_name(s.dtype)));
    return StorageLocation{r->data_offset, r->size};
  };
  return read_state_dict(root, path, key, file_index, resolve);
}

}  // namespace ckpt
