#include "core/cancel.h"

#include "core/error.h"

namespace ckpt {

void CancelToken::throw_if_requested() const {
  if (requested()) fail(Errc::kInterrupted, "", "", "interrupted");
}

}  // namespace ckpt
