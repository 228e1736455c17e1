// The CLI owns the process's signals (the library never does): SIGINT and SIGTERM set the one
// cancellation token every command passes into lib/, which stops at its next check, removes what
// it had half-written and throws Errc::kInterrupted; main then exits 128 + the signal number
// (130 for SIGINT, 143 for SIGTERM), as shells report a process killed by that signal. A second
// signal while the first is being honoured kills the process at once (the default action); the
// temporary it leaves is recognised and removed by the next run (plan/output_dir.h).
#pragma once

#include "checkpoint/checkpoint.h"
#include "core/cancel.h"
#include "core/parallel.h"

namespace ckpt::cli {

// Installs the handlers (once, from main, before any work starts).
void install_interrupt_handlers();
// The token the handlers set.
const CancelToken& interrupt_token();
// --threads and the token, as lib/ takes them.
Workers workers(int threads);
// Opening options whose reading stops on the token.
OpenOptions open_options();
// 128 + the first signal received (130 when none was: an interruption seen another way).
int interrupted_exit_code();

}  // namespace ckpt::cli
