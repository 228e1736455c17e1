#include "formats/torch_state_dict.h"

#include <map>

#include "core/error.h"
#include "core/sizes.h"

namespace ckpt {

namespace {

using pickle::Kind;
using pickle::Object;

bool is_tensor_dict(const Object* o) {
  if (o->kind != Kind::kDict || o->entries.empty()) return false;
  for (const auto& [k, v] : o->entries)
    if (k->kind != Kind::kStr || v->kind != Kind::kTensor) return false;
  return true;
}

std::string quoted_keys(const Object* dict, size_t max = 8) {
  std::string s;
  size_t n = 0;
  for (const auto& [k, v] : dict->entries) {
    if (k->kind != Kind::kStr) continue;
    if (n++ == max) return s + ", ...";
    s += (s.empty() ? "'" : ", '") + k->text + "'";
  }
  return s;
}

// The dict the tensors come from, or an error that says where they seem to be.
const Object* find_tensor_dict(const Object* root, const std::string& file, const std::string& key) {
  if (!key.empty()) {
    if (root->kind != Kind::kDict)
      fail(Errc::kTorchInvalid, file, "", std::string("--key ") + key + ": the top level is a " + kind_name(root->kind) + ", not a dict");
    const Object* sub = root->get(key);
    if (!sub) fail(Errc::kTorchInvalid, file, "", "--key " + key + ": no such top-level key (keys: " + quoted_keys(root) + ")");
    if (sub->kind != Kind::kDict)
      fail(Errc::kTorchInvalid, file, "", "--key " + key + ": holds a " + kind_name(sub->kind) + ", not a dict of tensors");
    return sub;
  }
  if (root->kind != Kind::kDict)
    fail(Errc::kTorchInvalid, file, "", std::string("the top level is a ") + kind_name(root->kind) + ", not a dict of tensors");
  return root;
}

void check_entries(const Object* root, const Object* dict, const std::string& file, const std::string& key) {
  for (const auto& [k, v] : dict->entries) {
    if (k->kind != Kind::kStr)
      fail(Errc::kTorchInvalid, file, "", std::string("a state dict key is a ") + kind_name(k->kind) + ", not a string");
    if (v->kind == Kind::kTensor) continue;
    std::string hint;
    if (key.empty()) {
      std::string candidates;
      for (const auto& [k2, v2] : root->entries)
        if (k2->kind == Kind::kStr && is_tensor_dict(v2)) candidates += (candidates.empty() ? "" : ", ") + k2->text;
      hint = candidates.empty() ? "; this is not a plain state dict"
                                : "; the tensors seem to be nested, try --key " + candidates.substr(0, candidates.find(','));
      if (candidates.find(',') != std::string::npos) hint += " (tensor dicts under: " + candidates + ")";
    }
    fail(Errc::kTorchInvalid, file, k->text,
         std::string("value is a ") + kind_name(v->kind) + ", not a tensor" + hint);
  }
}

SourceView to_view(const std::string& name, const pickle::TensorView& t, const std::string& file, int file_index,
                   const StorageResolver& resolve, uint64_t* storage_bytes) {
  const pickle::StorageRef& s = t.storage->storage;
  const unsigned bits = dtype_bits(t.dtype), storage_bits = dtype_bits(s.dtype);
  if (bits % 8 || storage_bits % 8)
    fail(Errc::kUnsupported, file, name, "dtype " + std::string(dtype_name(t.dtype)) + " packs several values per byte; not supported");
  const uint64_t es = bits / 8, storage_es = storage_bits / 8;
  StorageLocation loc = resolve(s);
  *storage_bytes = loc.nbytes;
  // The bytes this tensor may use: the storage, or its legacy sub-view.
  uint64_t base = loc.offset, span = loc.nbytes;
  if (s.view_numel) {
    base += s.view_offset * storage_es;
    span = *s.view_numel * storage_es;
  }
  auto numel = checked_numel(t.shape);
  if (!numel || !checked_nbytes(t.dtype, *numel)) fail(Errc::kTorchInvalid, file, name, "shape " + shape_to_string(t.shape) + " overflows");
  for (int64_t st : t.strides)
    if (st < 0) fail(Errc::kUnsupported, file, name, "negative strides are not supported");
  if (*numel > 0) {
    // Last element reached: offset + sum((size-1) * stride), in 128 bits so nothing wraps.
    unsigned __int128 last = t.offset;
    for (size_t d = 0; d < t.shape.size(); ++d)
      last += static_cast<unsigned __int128>(t.shape[d] - 1) * static_cast<uint64_t>(t.strides[d]);
    if ((last + 1) * es > span)
      fail(Errc::kTorchInvalid, file, name,
           "view (offset " + std::to_string(t.offset) + ", shape " + shape_to_string(t.shape) + ") reaches outside its storage '" +
               s.key + "' of " + std::to_string(span) + " bytes");
  } else if (static_cast<unsigned __int128>(t.offset) * es > span) {
    fail(Errc::kTorchInvalid, file, name, "storage offset lies outside its storage " + quote(s.key));
  }
  SourceView v;
  v.file = file_index;
  v.offset = base + t.offset * es;
  v.dtype = t.dtype;
  v.shape = t.shape;
  v.strides = t.strides;
  if (v.is_contiguous()) v.strides.clear();
  return v;
}

}  // namespace

std::vector<TorchTensor> read_state_dict(const pickle::Object* root, const std::string& file, const std::string& key,
                                         int file_index, const StorageResolver& resolve) {
  const Object* dict = find_tensor_dict(root, file, key);
  check_entries(root, dict, file, key);
  std::vector<TorchTensor> out;
  for (const auto& [k, v] : dict->entries) {
    TorchTensor t{k->text, v->tensor.storage->storage.key, {}, 0};
    t.view = to_view(k->text, v->tensor, file, file_index, resolve, &t.storage_bytes);
    out.push_back(std::move(t));
  }
  return out;
}

void check_expansion(const std::string& file, const std::vector<TorchTensor>& tensors, bool allow) {
  if (allow || tensors.empty()) return;
  std::map<std::string, uint64_t> storages;
  unsigned __int128 out = 0;
  const TorchTensor* worst = &tensors[0];
  auto growth = [](const TorchTensor& t) { return static_cast<__int128>(t.view.nbytes()) - t.storage_bytes; };
  for (const auto& t : tensors) {
    storages.emplace(t.storage_key, t.storage_bytes);
    out += t.view.nbytes();
    if (growth(t) > growth(*worst)) worst = &t;
  }
  unsigned __int128 in = 0;
  for (const auto& [key, bytes] : storages) in += bytes;
  if (out <= kMaxExpansion * in || out - in <= kExpansionSlack) return;
  std::string strides;
  for (int64_t st : worst->view.effective_strides()) strides += (strides.empty() ? "" : ", ") + std::to_string(st);
  auto size = [](unsigned __int128 v) { return format_bytes(v > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(v)); };
  fail(Errc::kExpandedView, file, worst->name,
       "view of " + shape_to_string(worst->view.shape) + " with strides (" + strides + ") makes " +
           size(worst->view.nbytes()) + " from its " + size(worst->storage_bytes) + " storage " + quote(worst->storage_key) +
           "; the file's tensors come to " + size(out) + " from " + size(in) + " of storages (repeated elements, as " +
           "expand() makes); --allow-expand writes them anyway");
}

}  // namespace ckpt
