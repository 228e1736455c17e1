#include "formats/torch_legacy.h"

#include <cstring>
#include <map>

#include "core/error.h"
#include "formats/pickle/unpickler.h"

namespace ckpt {

namespace {

// PROTO 2, LONG1 10 bytes = 0x1950a86a20f9469cfc6c (MAGIC_NUMBER), STOP.
constexpr uint8_t kMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
constexpr int64_t kProtocolVersion = 1001;

}  // namespace

bool is_torch_legacy(const uint8_t* head, size_t n) {
  return n >= sizeof kMagic && std::memcmp(head, kMagic, sizeof kMagic) == 0;
}

std::vector<TorchTensor> read_torch_legacy(const File& f, const std::string& key, int file_index) {
  const std::string& path = f.path();
  MappedFile map(f);
  const uint64_t size = map.size();
  if (!is_torch_legacy(map.data(), size)) fail(Errc::kTorchInvalid, path, "", "not a legacy torch file (magic number missing)");
  pickle::Arena arena;
  pickle::Source ps{map.data(), size, path, "legacy stream"};
  size_t pos = sizeof kMagic;
  const pickle::Object* version = pickle::unpickle(ps, pos, arena, &pos);
  if (version->kind != pickle::Kind::kInt || version->integer != kProtocolVersion)
    fail(Errc::kTorchInvalid, path, "", "legacy protocol version is not 1001");
  const pickle::Object* sys_info = pickle::unpickle(ps, pos, arena, &pos);
  const pickle::Object* little = sys_info->kind == pickle::Kind::kDict ? sys_info->get("little_endian") : nullptr;
  if (!little || little->kind != pickle::Kind::kBool) fail(Errc::kTorchInvalid, path, "", "legacy sys_info has no little_endian flag");
  if (!little->boolean) fail(Errc::kUnsupported, path, "", "file was written on a big-endian machine; not supported");
  const pickle::Object* root = pickle::unpickle(ps, pos, arena, &pos);
  const pickle::Object* keys = pickle::unpickle(ps, pos, arena, &pos);
  if (keys->kind != pickle::Kind::kList) fail(Errc::kTorchInvalid, path, "", "legacy storage key list is not a list");

  // The storages follow in the order of that list: an int64 element count, then the bytes.
  std::map<std::string, StorageLocation> where;
  for (const pickle::Object* k : keys->items) {
    if (k->kind != pickle::Kind::kStr) fail(Errc::kTorchInvalid, path, "", "legacy storage key is not a string");
    auto it = arena.storages.find(k->text);
    if (it == arena.storages.end()) fail(Errc::kTorchInvalid, path, "", "storage " + quote(k->text) + " is listed but never used");
    const pickle::StorageRef& s = it->second->storage;
    if (size - pos < 8) fail(Errc::kTorchInvalid, path, "", "file ends before storage " + quote(k->text) + " (truncated?)");
    uint64_t numel = 0;
    for (int i = 0; i < 8; ++i) numel |= static_cast<uint64_t>(map.data()[pos + i]) << (8 * i);
    pos += 8;
    if (numel != s.numel)
      fail(Errc::kTorchInvalid, path, "", "storage " + quote(k->text) + " holds " + std::to_string(numel) + " elements, the pickle declares " +
                                              std::to_string(s.numel));
    const auto nbytes_or = checked_nbytes(s.dtype, s.numel);
    if (!nbytes_or || size - pos < *nbytes_or) fail(Errc::kTorchInvalid, path, "", "file ends inside storage " + quote(k->text) + " (truncated?)");
    const uint64_t nbytes = *nbytes_or;
    if (!where.emplace(k->text, StorageLocation{pos, nbytes}).second)
      fail(Errc::kTorchInvalid, path, "", "storage " + quote(k->text) + " is listed twice");
    pos += nbytes;
  }
  if (pos != size) fail(Errc::kTorchInvalid, path, "", std::to_string(size - pos) + " unexpected bytes after the last storage");
  auto resolve = [&](const pickle::StorageRef& s) {
    auto it = where.find(s.key);
    if (it == where.end()) fail(Errc::kTorchInvalid, path, "", "storage " + quote(s.key) + " has no data in the file");
    return it->second;
  };
  return read_state_dict(root, path, key, file_index, resolve);
}

}  // namespace ckpt
