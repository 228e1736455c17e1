// Builders for handcrafted PyTorch files in tests: a zip writer with torch's layout (64-byte
// aligned stored records, zero sizes in local headers, data descriptors, ZIP64 end records) that
// can also break any rule on request, and a pickle writer for state dicts and hostile pickles.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ckpt::test {

struct ZipEntry {
  std::string name;
  std::string data;
  uint16_t method = 0;       // written as given (the data is not compressed)
  bool zip64 = false;        // directory fields 0xFFFFFFFF and the values in a ZIP64 extra
  bool wrong_crc = false;    // store a CRC that does not match
};

std::string build_zip(const std::vector<ZipEntry>& entries);

// A pickle, opcode by opcode (protocol 2 encodings, as torch.save writes them).
class PickleWriter {
 public:
  PickleWriter& proto(uint8_t v = 2);
  PickleWriter& op(uint8_t opcode);  // any single-byte opcode, operands follow with raw()
  PickleWriter& raw(const std::string& bytes);
  PickleWriter& global(const std::string& module, const std::string& name);
  PickleWriter& str(const std::string& s);  // BINUNICODE
  PickleWriter& integer(int64_t v);         // BININT1/BININT2/BININT/LONG1 as CPython picks
  PickleWriter& boolean(bool v);
  PickleWriter& ordered_dict();             // collections.OrderedDict() via REDUCE
  // torch._utils._rebuild_tensor_v2(('storage', torch.<cls>, key, 'cpu', numel), offset, size,
  // stride, False, OrderedDict()) — or _rebuild_tensor_v3 with UntypedStorage when dtype is set.
  PickleWriter& tensor(const std::string& storage_class, const std::string& key, int64_t numel, int64_t offset,
                       const std::vector<int64_t>& size, const std::vector<int64_t>& stride,
                       const std::string& v3_dtype = "");
  PickleWriter& int_tuple(const std::vector<int64_t>& v);
  const std::string& bytes() const { return b_; }

 private:
  std::string b_;
};

struct TensorSpec {
  std::string name;
  std::string storage_class;  // "FloatStorage", ...
  std::string key;            // storage key ("0", "1", ...)
  int64_t storage_numel;
  int64_t offset;
  std::vector<int64_t> size, stride;
  std::string v3_dtype;       // "float8_e4m3fn" for _rebuild_tensor_v3
};

// The pickle of an OrderedDict state dict holding these tensors.
std::string state_dict_pickle(const std::vector<TensorSpec>& tensors);
// A torch zip: <folder>/data.pkl, then <folder>/data/<key> for each storage in `storages`.
std::string build_torch_zip(const std::string& pickle, const std::vector<std::pair<std::string, std::string>>& storages,
                            const std::string& folder = "archive");

}  // namespace ckpt::test
