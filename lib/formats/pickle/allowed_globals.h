// Maps a GLOBAL "module name" pair to the allow-list, or refuses it.
#pragma once

#include <optional>
#include <string_view>

#include "core/dtype.h"
#include "formats/pickle/value.h"

namespace ckpt::pickle {

struct AllowedGlobal {
  Global global;
  DType dtype = DType::U8;  // for storage classes and dtypes
};

std::optional<AllowedGlobal> lookup_global(std::string_view module, std::string_view name);

}  // namespace ckpt::pickle
