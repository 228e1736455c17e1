#include "interrupt.h"

#include <signal.h>

#include <atomic>

namespace ckpt::cli {

namespace {

CancelToken g_token;
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "set from a signal handler");

extern "C" void on_interrupt(int sig) {
  int none = 0;
  if (!g_signal.compare_exchange_strong(none, sig)) {
    // The second signal: the user insists. Die of it now (the default action).
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  g_token.request();
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocked reads and writes resume; the next token check stops the work
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

const CancelToken& interrupt_token() { return g_token; }

Workers workers(int threads) { return Workers{threads, &g_token}; }

OpenOptions open_options() {
  OpenOptions o;
  o.cancel = &g_token;
  return o;
}

int interrupted_exit_code() {
  const int sig = g_signal.load();
  return 128 + (sig ? sig : SIGINT);
}

}  // namespace ckpt::cli
