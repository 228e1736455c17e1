// An LD_PRELOAD library for the CLI tests of durable output (test_output_dir.sh; built as
// ckpt_io_faults): it records every fsync(2), and fails chosen fsync(2) and close(2) calls with
// EIO, so a test sees which files and directories ckpt syncs before its rename, and that a failed
// sync or close fails the run instead of being discarded. Chosen by path substring:
//   CKPT_FAULT_LOG=FILE      append "fsync PATH" for every fsync
//   CKPT_FAULT_FSYNC=SUBSTR  fsync of a path containing SUBSTR fails with EIO
//   CKPT_FAULT_CLOSE=SUBSTR  close of a path containing SUBSTR closes, then fails with EIO (as
//                            close(2) reports a deferred write error on NFS)
// The log is written with raw system calls, so it never re-enters the wrappers.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

int fd_path(int fd, char* out, size_t n) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t r = readlink(link, out, n - 1);
  if (r < 0) return -1;
  out[r] = 0;
  return 0;
}

int matches(const char* var, const char* path) {
  const char* want = getenv(var);
  return want && *want && strstr(path, want) != NULL;
}

}  // namespace

extern "C" int fsync(int fd) {
  char path[4096];
  if (fd_path(fd, path, sizeof path) == 0) {
    const char* log = getenv("CKPT_FAULT_LOG");
    if (log && *log) {
      int l = static_cast<int>(syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
      if (l >= 0) {
        char line[4200];
        int len = snprintf(line, sizeof line, "fsync %s\n", path);
        if (write(l, line, static_cast<size_t>(len)) < 0) { /* the log is best effort */ }
        syscall(SYS_close, l);
      }
    }
    if (matches("CKPT_FAULT_FSYNC", path)) {
      errno = EIO;
      return -1;
    }
  }
  return static_cast<int>(syscall(SYS_fsync, fd));
}

extern "C" int close(int fd) {
  char path[4096];
  const int fail = fd_path(fd, path, sizeof path) == 0 && matches("CKPT_FAULT_CLOSE", path);
  const int r = static_cast<int>(syscall(SYS_close, fd));
  if (r == 0 && fail) {
    errno = EIO;
    return -1;
  }
  return r;
}
