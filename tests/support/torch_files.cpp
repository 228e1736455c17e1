#include "torch_files.h"

#include "formats/crc32.h"

namespace ckpt::test {

namespace {

void put16(std::string& s, uint16_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>(v >> 8);
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v));
  put16(s, static_cast<uint16_t>(v >> 16));
}
void put64(std::string& s, uint64_t v) {
  put32(s, static_cast<uint32_t>(v));
  put32(s, static_cast<uint32_t>(v >> 32));
}

}  // namespace

std::string build_zip(const std::vector<ZipEntry>& entries) {
  std::string out, cd;
  for (const auto& e : entries) {
    const uint64_t local = out.size();
    uint32_t crc = ckpt::crc32(0, reinterpret_cast<const uint8_t*>(e.data.data()), e.data.size());
    if (e.wrong_crc) crc ^= 1;
    // Local header: torch's zero CRC and sizes, then an 'FB' extra padding the data to 64 bytes.
    std::string lh;
    put32(lh, 0x04034b50);
    put16(lh, 20);
    put16(lh, 0x0808);
    put16(lh, e.method);
    put32(lh, 0);
    put32(lh, 0);
    put32(lh, 0);
    put32(lh, 0);
    put16(lh, static_cast<uint16_t>(e.name.size()));
    size_t unpadded = local + 30 + e.name.size() + 4;
    uint16_t pad = static_cast<uint16_t>((64 - unpadded % 64) % 64);
    put16(lh, static_cast<uint16_t>(4 + pad));
    lh += e.name;
    lh += "FB";
    put16(lh, pad);
    lh += std::string(pad, 'Z');
    out += lh;
    out += e.data;
    put32(out, 0x08074b50);
    put32(out, crc);
    put32(out, static_cast<uint32_t>(e.data.size()));
    put32(out, static_cast<uint32_t>(e.data.size()));
    // Central directory entry.
    std::string extra;
    if (e.zip64) {
      put16(extra, 0x0001);
      put16(extra, 24);
      put64(extra, e.data.size());
      put64(extra, e.data.size());
      put64(extra, local);
    }
    put32(cd, 0x02014b50);
    put16(cd, 0x031E);
    put16(cd, 45);
    put16(cd, 0x0808);
    put16(cd, e.method);
    put32(cd, 0);
    put32(cd, crc);
    put32(cd, e.zip64 ? 0xFFFFFFFFu : static_cast<uint32_t>(e.data.size()));
    put32(cd, e.zip64 ? 0xFFFFFFFFu : static_cast<uint32_t>(e.data.size()));
    put16(cd, static_cast<uint16_t>(e.name.size()));
    put16(cd, static_cast<uint16_t>(extra.size()));
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, e.zip64 ? 0xFFFFFFFFu : static_cast<uint32_t>(local));
    cd += e.name;
    cd += extra;
  }
  const uint64_t cd_offset = out.size();
  out += cd;
  // ZIP64 end record and locator (torch always writes them), then the classic end record.
  const uint64_t eocd64 = out.size();
  put32(out, 0x06064b50);
  put64(out, 44);
  put16(out, 0x031E);
  put16(out, 45);
  put32(out, 0);
  put32(out, 0);
  put64(out, entries.size());
  put64(out, entries.size());
  put64(out, cd.size());
  put64(out, cd_offset);
  put32(out, 0x07064b50);
  put32(out, 0);
  put64(out, eocd64);
  put32(out, 1);
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint16_t>(entries.size()));
  put16(out, static_cast<uint16_t>(entries.size()));
  put32(out, static_cast<uint32_t>(cd.size()));
  put32(out, static_cast<uint32_t>(cd_offset));
  put16(out, 0);
  return out;
}

PickleWriter& PickleWriter::proto(uint8_t v) {
  b_ += '\x80';
  b_ += static_cast<char>(v);
  return *this;
}
PickleWriter& PickleWriter::op(uint8_t opcode) {
  b_ += static_cast<char>(opcode);
  return *this;
}
PickleWriter& PickleWriter::raw(const std::string& bytes) {
  b_ += bytes;
  return *this;
}
PickleWriter& PickleWriter::global(const std::string& module, const std::string& name) {
  b_ += 'c' + module + '\n' + name + '\n';
  return *this;
}
PickleWriter& PickleWriter::str(const std::string& s) {
  b_ += 'X';
  put32(b_, static_cast<uint32_t>(s.size()));
  b_ += s;
  return *this;
}
PickleWriter& PickleWriter::integer(int64_t v) {
  if (v >= 0 && v < 256) {
    b_ += 'K';
    b_ += static_cast<char>(v);
  } else if (v >= 0 && v < 65536) {
    b_ += 'M';
    put16(b_, static_cast<uint16_t>(v));
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    b_ += 'J';
    put32(b_, static_cast<uint32_t>(v));
  } else {
    b_ += '\x8a';
    b_ += '\x08';
    put64(b_, static_cast<uint64_t>(v));
  }
  return *this;
}
PickleWriter& PickleWriter::boolean(bool v) { return op(v ? 0x88 : 0x89); }
PickleWriter& PickleWriter::ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
PickleWriter& PickleWriter::int_tuple(const std::vector<int64_t>& v) {
  op('(');
  for (int64_t x : v) integer(x);
  return op('t');
}
PickleWriter& PickleWriter::tensor(const std::string& storage_class, const std::string& key, int64_t numel, int64_t offset,
                                   const std::vector<int64_t>& size, const std::vector<int64_t>& stride,
                                   const std::string& v3_dtype) {
  global("torch._utils", v3_dtype.empty() ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3");
  op('(');
  op('(').str("storage");
  if (v3_dtype.empty()) global("torch", storage_class);
  else global("torch.storage", "UntypedStorage");
  str(key).str("cpu").integer(numel).op('t').op('Q');
  integer(offset).int_tuple(size).int_tuple(stride).boolean(false).ordered_dict();
  if (!v3_dtype.empty()) global("torch", v3_dtype);
  return op('t').op('R');
}

std::string state_dict_pickle(const std::vector<TensorSpec>& tensors) {
  PickleWriter w;
  w.proto().ordered_dict().op('(');
  for (const auto& t : tensors) w.str(t.name).tensor(t.storage_class, t.key, t.storage_numel, t.offset, t.size, t.stride, t.v3_dtype);
  return w.op('u').op('.').bytes();
}

std::string build_torch_zip(const std::string& pickle, const std::vector<std::pair<std::string, std::string>>& storages,
                            const std::string& folder) {
  std::vector<ZipEntry> e;
  e.push_back({folder + "/data.pkl", pickle});
  e.push_back({folder + "/byteorder", "little"});
  for (const auto& [key, bytes] : storages) e.push_back({folder + "/data/" + key, bytes});
  e.push_back({folder + "/version", "3\n"});
  return build_zip(e);
}

}  // namespace ckpt::test
