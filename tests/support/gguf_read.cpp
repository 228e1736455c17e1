#include "gguf_read.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace ckpt::test {

namespace {

class Cursor {
 public:
  explicit Cursor(const std::vector<uint8_t>& b) : b_(b) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::vector<uint8_t> bytes(uint64_t n) {
    need(n);
    std::vector<uint8_t> v(b_.begin() + static_cast<long>(pos_), b_.begin() + static_cast<long>(pos_ + n));
    pos_ += n;
    return v;
  }
  uint64_t pos() const { return pos_; }

 private:
  void need(uint64_t n) const {
    if (n > b_.size() - pos_) throw std::runtime_error("gguf: truncated at byte " + std::to_string(pos_));
  }
  const std::vector<uint8_t>& b_;
  uint64_t pos_ = 0;
};

uint64_t scalar_size(uint32_t t) {
  switch (t) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8;
  }
  throw std::runtime_error("gguf: bad value type " + std::to_string(t));
}

}  // namespace

uint64_t ggml_tensor_bytes(uint32_t type, const std::vector<int64_t>& ne) {
  uint64_t block = 1, bytes = 0;
  switch (type) {
    case 0: bytes = 4; break;
    case 1: case 30: bytes = 2; break;
    case 2: block = 32; bytes = 18; break;
    case 3: block = 32; bytes = 20; break;
    case 6: block = 32; bytes = 22; break;
    case 7: block = 32; bytes = 24; break;
    case 8: block = 32; bytes = 34; break;
    case 12: block = 256; bytes = 144; break;
    case 13: block = 256; bytes = 176; break;
    case 14: block = 256; bytes = 210; break;
    default: throw std::runtime_error("gguf: unexpected ggml type " + std::to_string(type));
  }
  if (ne.at(0) % static_cast<int64_t>(block)) throw std::runtime_error("gguf: ne[0] is not whole blocks");
  uint64_t n = static_cast<uint64_t>(ne[0]) / block * bytes;
  for (size_t i = 1; i < ne.size(); ++i) n *= static_cast<uint64_t>(ne[i]);
  return n;
}

GgufFile read_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Cursor c(b);
  GgufFile f;
  f.file_size = b.size();
  if (c.get<uint32_t>() != 0x46554747u) throw std::runtime_error("gguf: bad magic");
  f.version = c.get<uint32_t>();
  const uint64_t n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str();
    GgufKv kv;
    kv.type = c.get<uint32_t>();
    if (kv.type == 8) {
      kv.str = c.str();
    } else if (kv.type == 9) {
      kv.elem_type = c.get<uint32_t>();
      kv.count = c.get<uint64_t>();
      if (kv.elem_type == 8) {
        for (uint64_t k = 0; k < kv.count; ++k) kv.strings.push_back(c.str());
      } else {
        kv.array_raw = c.bytes(kv.count * scalar_size(kv.elem_type));
      }
    } else {
      kv.raw = c.bytes(scalar_size(kv.type));
    }
    if (!f.kv.emplace(key, kv).second) throw std::runtime_error("gguf: duplicate key " + key);
    f.key_order.push_back(key);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.str();
    const uint32_t nd = c.get<uint32_t>();
    for (uint32_t d = 0; d < nd; ++d) t.ne.push_back(c.get<int64_t>());
    t.type = c.get<uint32_t>();
    t.offset = c.get<uint64_t>();
    f.tensors.push_back(t);
  }
  f.data_start = (c.pos() + 31) / 32 * 32;
  uint64_t expect = 0;
  for (const auto& t : f.tensors) {
    if (t.offset != expect) throw std::runtime_error("gguf: tensor " + t.name + " has offset " + std::to_string(t.offset) + ", expected " + std::to_string(expect));
    const uint64_t n = ggml_tensor_bytes(t.type, t.ne);
    if (f.data_start + t.offset + n > f.file_size) throw std::runtime_error("gguf: tensor " + t.name + " past the end");
    expect += (n + 31) / 32 * 32;
  }
  for (uint64_t i = c.pos(); i < f.data_start; ++i)
    if (b[i] != 0) throw std::runtime_error("gguf: header padding is not zero");
  return f;
}

uint32_t GgufFile::u32(const std::string& key) const {
  const GgufKv& kv = kv_at(key);
  if (kv.type != 4) throw std::runtime_error("gguf: " + key + " is not u32");
  uint32_t v;
  std::memcpy(&v, kv.raw.data(), 4);
  return v;
}

float GgufFile::f32(const std::string& key) const {
  const GgufKv& kv = kv_at(key);
  if (kv.type != 6) throw std::runtime_error("gguf: " + key + " is not f32");
  float v;
  std::memcpy(&v, kv.raw.data(), 4);
  return v;
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return t;
  throw std::runtime_error("gguf: no tensor " + name);
}

}  // namespace ckpt::test
