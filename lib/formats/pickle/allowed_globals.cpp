#include "formats/pickle/allowed_globals.h"

#include <array>
#include <utility>

namespace ckpt::pickle {

namespace {

// torch/storage.py _dtype_to_storage_type_map: the typed (legacy) storage classes. Quantized
// storages have no safetensors dtype and are left out.
constexpr std::array<std::pair<std::string_view, DType>, 11> kStorageClasses = {{
    {"DoubleStorage", DType::F64}, {"FloatStorage", DType::F32}, {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16}, {"CharStorage", DType::I8}, {"ByteStorage", DType::U8},
    {"BoolStorage", DType::BOOL}, {"ComplexFloatStorage", DType::C64},
}};  // ComplexDoubleStorage (c128) has no safetensors dtype either.

}  // namespace

std::optional<AllowedGlobal> lookup_global(std::string_view module, std::string_view name) {
  if (module == "collections" && name == "OrderedDict") return AllowedGlobal{Global::kOrderedDict};
  if (module == "torch._utils") {
    if (name == "_rebuild_tensor") return AllowedGlobal{Global::kRebuildTensor};
    if (name == "_rebuild_tensor_v2") return AllowedGlobal{Global::kRebuildTensorV2};
    if (name == "_rebuild_tensor_v3") return AllowedGlobal{Global::kRebuildTensorV3};
    if (name == "_rebuild_parameter") return AllowedGlobal{Global::kRebuildParameter};
    return std::nullopt;
  }
  if (module == "torch.storage" && name == "UntypedStorage") return AllowedGlobal{Global::kStorageClass, DType::U8};
  if (module != "torch") return std::nullopt;
  for (const auto& [cls, dtype] : kStorageClasses)
    if (cls == name) return AllowedGlobal{Global::kStorageClass, dtype};
  if (auto d = dtype_from_torch_name(name)) return AllowedGlobal{Global::kDtype, *d};
  return std::nullopt;
}

}  // namespace ckpt::pickle
