#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "core/error.h"

namespace ckpt {

namespace {

// gguf_type (ggml-org/ggml include/gguf.h).
enum : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9,
};

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian host (x86-64, aarch64): GGUF's byte order
  out.append(b, sizeof(T));
}

uint64_t align_up(uint64_t n) { return (n + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment; }

// The block number of "blk.N.…", or -1 (llama-model-loader.h weight_name_comparer's sscanf).
long block_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  size_t i = 4;
  long n = 0;
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') n = n * 10 + (name[i++] - '0');
  return n;
}

class GgufContainer : public ContainerWriter {
 public:
  GgufContainer(GgufMetadata md, std::map<std::string, ops::GgmlType> types)
      : md_(std::move(md)), types_(std::move(types)) {}

  std::string_view format() const override { return "gguf"; }

  std::string type_name(const ContainerTensor& t) const override {
    return std::string(ops::ggml_type_info(type_of(t.name)).name);
  }

  ContainerLayout lay_out(const std::string& file_label, std::span<const ContainerTensor> tensors) const override {
    for (const auto& t : tensors) {
      if (t.name.empty() || t.name.size() > kGgufMaxNameBytes)
        fail(Errc::kBadTensorName, file_label, t.name, "GGUF tensor names are 1 to 63 bytes (llama.cpp's GGML_MAX_NAME)");
      if (t.shape.empty() || t.shape.size() > 4)
        fail(Errc::kUnsupported, file_label, t.name, "GGUF tensors have 1 to 4 dimensions");
      const uint64_t row = t.shape.back();
      uint64_t rows = 1;
      for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
      const auto type = type_of(t.name);
      const auto expect = ops::ggml_nbytes(type, row, rows);
      if (!expect || *expect != t.nbytes)
        throw std::logic_error("gguf: producer size of '" + t.name + "' does not match its ggml type and shape");
    }
    ContainerLayout l;
    l.order.resize(tensors.size());
    std::iota(l.order.begin(), l.order.end(), 0);
    std::stable_sort(l.order.begin(), l.order.end(), [&](size_t a, size_t b) {
      const long la = block_of(tensors[a].name), lb = block_of(tensors[b].name);
      if (la != lb) return la < lb;
      return tensors[a].name < tensors[b].name;
    });
    std::string& h = l.head;
    h.append("GGUF", 4);
    put<uint32_t>(h, kGgufVersion);
    put<uint64_t>(h, tensors.size());
    put<uint64_t>(h, md_.count());
    h += md_.bytes();
    uint64_t rel = 0;
    std::vector<uint64_t> rel_offsets;
    for (size_t i : l.order) {
      const auto& t = tensors[i];
      gguf_put_string(h, t.name);
      put<uint32_t>(h, static_cast<uint32_t>(t.shape.size()));
      for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put<int64_t>(h, static_cast<int64_t>(*d));
      put<int32_t>(h, static_cast<int32_t>(type_of(t.name)));
      put<uint64_t>(h, rel);
      rel_offsets.push_back(rel);
      rel += align_up(t.nbytes);
    }
    h.append(align_up(h.size()) - h.size(), '\0');
    for (uint64_t r : rel_offsets) l.offsets.push_back(h.size() + r);
    l.size = h.size() + rel;
    return l;
  }

 private:
  ops::GgmlType type_of(const std::string& name) const {
    auto it = types_.find(name);
    if (it == types_.end()) throw std::logic_error("gguf: no ggml type for tensor '" + name + "'");
    return it->second;
  }

  GgufMetadata md_;
  std::map<std::string, ops::GgmlType> types_;
};

}  // namespace

void gguf_put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void GgufMetadata::begin(const std::string& key, uint32_t type) {
  if (key.empty() || !keys_.insert(key).second) throw std::logic_error("gguf metadata: empty or repeated key '" + key + "'");
  gguf_put_string(bytes_, key);
  put<uint32_t>(bytes_, type);
  ++count_;
}

void GgufMetadata::add_string(const std::string& key, const std::string& v) {
  begin(key, kString);
  gguf_put_string(bytes_, v);
}
void GgufMetadata::add_u32(const std::string& key, uint32_t v) {
  begin(key, kU32);
  put(bytes_, v);
}
void GgufMetadata::add_i32(const std::string& key, int32_t v) {
  begin(key, kI32);
  put(bytes_, v);
}
void GgufMetadata::add_f32(const std::string& key, float v) {
  begin(key, kF32);
  put(bytes_, v);
}
void GgufMetadata::add_bool(const std::string& key, bool v) {
  begin(key, kBool);
  put<uint8_t>(bytes_, v ? 1 : 0);
}
void GgufMetadata::add_u16(const std::string& key, uint16_t v) {
  begin(key, kU16);
  put(bytes_, v);
}
void GgufMetadata::add_string_array(const std::string& key, const std::vector<std::string>& v) {
  begin(key, kArray);
  put<uint32_t>(bytes_, kString);
  put<uint64_t>(bytes_, v.size());
  for (const auto& s : v) gguf_put_string(bytes_, s);
}
void GgufMetadata::add_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  begin(key, kArray);
  put<uint32_t>(bytes_, kI32);
  put<uint64_t>(bytes_, v.size());
  for (int32_t x : v) put(bytes_, x);
}
void GgufMetadata::add_f32_array(const std::string& key, const std::vector<float>& v) {
  begin(key, kArray);
  put<uint32_t>(bytes_, kF32);
  put<uint64_t>(bytes_, v.size());
  for (float x : v) put(bytes_, x);
}

std::shared_ptr<const ContainerWriter> gguf_container(GgufMetadata metadata, std::map<std::string, ops::GgmlType> types) {
  return std::make_shared<GgufContainer>(std::move(metadata), std::move(types));
}

}  // namespace ckpt
