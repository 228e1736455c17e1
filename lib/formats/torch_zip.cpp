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

// A storage record's CRC-32, checked while the plan runs: assembled from the CRCs of the blocks
// the executor's copies fed it, reading only the bytes no copy read (see source_check.h).
class RecordCrcCheck : public SourceCheck {
 public:
  RecordCrcCheck(int file, ZipRecord record) : file_(file), record_(std::move(record)) {}
  int file() const override { return file_; }
  uint64_t offset() const override { return record_.data_offset; }
  uint64_t bytes() const override { return record_.size; }
  std::unique_ptr<Pass> start() const override { return std::make_unique<RecordPass>(record_); }

 private:
  class RecordPass : public Pass {
   public:
    explicit RecordPass(const ZipRecord& record) : record_(record) {}
    void feed(uint64_t offset, const uint8_t* data, size_t n) override { seen_.add(offset, data, n); }
    void finish(const File& source, const CancelToken* cancel) override {
      verify_zip_record_crc(FileSource(source), record_, seen_, cancel);
    }

   private:
    const ZipRecord& record_;
    Crc32Pieces seen_;
  };

  int file_;
  ZipRecord record_;
};

}  // namespace

std::vector<TorchTensor> read_torch_zip(const File& f, const std::string& key, bool verify_crc, int file_index,
                                        SourceChecks& deferred) {
  const std::string& path = f.path();
  FileSource src(f);
  ZipArchive zip = read_zip_directory(src);
  if (zip.records.empty()) fail(Errc::kTorchInvalid, path, "", "zip archive has no records");
  // Every record sits under one folder, named after the first record (never assume "archive/").
  const std::string& first = zip.records[0].name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) fail(Errc::kTorchInvalid, path, "", "first zip record " + quote(first) + " is not inside a folder; not a torch file");
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
  if (verify_crc) {
    for (const ZipRecord& r : zip.records) {
      if (r.name.compare(0, prefix.size() + 5, prefix + "data/") == 0) deferred.push_back(std::make_shared<RecordCrcCheck>(file_index, r));
      else verify_zip_record_crc(src, r);  // small records, and the pickle before it is parsed
    }
  }
  if (pkl->size > kMaxPickleBytes) fail(Errc::kTorchInvalid, path, "", "data.pkl is larger than 1 GiB");
  const std::string pickle_bytes = read_record(src, *pkl);

  pickle::Arena arena;
  pickle::Source ps{reinterpret_cast<const uint8_t*>(pickle_bytes.data()), pickle_bytes.size(), path, prefix + "data.pkl"};
  const pickle::Object* root = pickle::unpickle(ps, 0, arena);
  auto resolve = [&](const pickle::StorageRef& s) {
    if (s.view_numel) fail(Errc::kTorchInvalid, path, "", "storage " + quote(s.key) + " has legacy view metadata inside a zip file");
    const std::string name = prefix + "data/" + s.key;
    const ZipRecord* r = zip.find(name);
    if (!r) fail(Errc::kTorchInvalid, path, "", "record " + quote(name) + " for storage " + quote(s.key) + " is missing");
    const auto expect = checked_nbytes(s.dtype, s.numel);
    if (!expect || r->size != *expect)
      fail(Errc::kTorchInvalid, path, "",
           "record " + quote(name) + " holds " + std::to_string(r->size) + " bytes, its storage declares " + std::to_string(s.numel) +
               " elements of " + std::string(dtype_name(s.dtype)));
    return StorageLocation{r->data_offset, r->size};
  };
  return read_state_dict(root, path, key, file_index, resolve);
}

}  // namespace ckpt
