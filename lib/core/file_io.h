// Thin, checked wrappers over POSIX file I/O. Every function names the file in its error.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ckpt {

// An owned file descriptor.
class File {
 public:
  File() = default;
  // Opens a regular file (or a symlink to one) for reading; FIFOs, devices, sockets and
  // directories are refused without blocking.
  static File open_read(const std::string& path);
  // Creates (O_EXCL) a new file for writing, mode 0666 less the umask.
  static File create(const std::string& path);
  // Opens an existing file for direct writes (O_DIRECT); an unopened File (fd -1) where the file
  // system takes none.
  static File open_direct_write(const std::string& path);
  File(File&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  uint64_t size() const;
  // Reads exactly n bytes at offset; a short read (the file shrank) is an error.
  void pread_exact(void* buf, size_t n, uint64_t offset) const;
  void pwrite_exact(const void* buf, size_t n, uint64_t offset) const;
  void truncate(uint64_t size) const;
  void sync() const;
  // Closes now and reports a failed close(2) (a deferred write error), which the destructor,
  // unable to throw, would lose. Output files are closed this way before they are committed.
  void close();

 private:
  int fd_ = -1;
  std::string path_;
};

// The alignment of file offsets, lengths and buffer addresses that direct (O_DIRECT) writes take:
// the page size, a multiple of every common disk's logical block (512 or 4096 bytes).
inline constexpr uint64_t kDirectAlign = 4096;

// A new output file of a known size, written at final offsets from several threads. With
// `direct`, each write's whole aligned pages go from the caller's buffer straight to the disk
// (O_DIRECT): no copy into the page cache, and the bytes are on their way to the disk while the
// work goes on, so the fsync that makes the output durable has little left to do. That copy is
// most of a write's CPU cost (on the 2-core VM: ~1.1-2.4 s of system time per 2 GB written
// through the page cache against ~0.3 s direct), and cp + sync pays it and the disk one after
// the other. The pages at either end of a write that it covers only in part (shared with the
// neighbouring write, tensor or header) go through the page cache, so no disk block is ever
// written both ways. Callers put the bytes for file offset `off` at an address congruent to
// `off` modulo kDirectAlign, else the write goes through the page cache whole. A file system
// without O_DIRECT (or refusing a write with EINVAL) gets buffered writes; the bytes are the same.
class OutputFileWriter {
 public:
  OutputFileWriter() = default;
  // Creates `path` (O_EXCL) with `size` bytes (reserved on the disk up front when direct, so that
  // a full disk fails here rather than midway, and aligned direct writes into the reserved
  // blocks run in parallel under a shared inode lock).
  static OutputFileWriter create(const std::string& path, uint64_t size, bool direct);
  // Writes n bytes at offset (from any thread; ranges of concurrent writes must not overlap).
  void write(const void* buf, size_t n, uint64_t offset) const;
  bool direct() const { return direct_.fd() >= 0; }
  const std::string& path() const { return file_.path(); }
  // Starts writing [offset, offset + n) back to the disk when the writes went through the page
  // cache (not direct; direct writes are on the disk already): the disk then works while
  // the CPU produces the next chunks, and the final fsync has little left to wait for (that wait
  // was about a fifth of `quantize --int4`'s wall time on the loaded 2-core machine). A hint: an
  // I/O error is reported by the fsync.
  void start_writeback(uint64_t offset, uint64_t n) const;
  // Closes both descriptors, reporting a failed close(2).
  void close();

 private:
  File file_;    // buffered
  File direct_;  // the same file opened with O_DIRECT; closed when not direct
};

// Writes handed from the threads that make the bytes to a few threads that only write, so that a
// durable run's direct writes (which return only once the disk has the bytes) do not hold up the
// work: with the write in the producing thread, the 2-core machine alternated between making
// bytes and waiting for the disk, one 1 MiB write in flight per thread (`ckpt gguf --type f16`:
// 2.5-3.0 s for 2.2 GB where cp + sync took 1.8-2.0 s and the work 1.1 CPU-s). The buffers come
// from a fixed pool (placed in 2 MiB pages where the kernel offers them: a fresh 4 KiB page
// costs a fault, ~15 us on the PVM guest), so a producer that outruns the disk waits for a free
// one and memory stays bounded. With no writer threads, submit() writes in the caller's thread
// (the page-cache writes of a --no-sync run: their copy is CPU work, best done while the bytes
// are in the producer's cache) unless another caller is writing to the same file: then the block
// is queued for that caller, which writes every queued block of its file before it returns, and
// this one goes on making bytes. Buffered writes to one file hold its inode lock for the whole
// copy, so a second writer would only wait for it, spinning on Linux (`rwsem_spin_on_owner`, 11 %
// of `ckpt gguf --type f16`'s CPU on the 2-core machine), while the bytes it could make wait too.
class WriteBehind {
 public:
  // Direct writes in flight at once for a durable output (the writer threads): with the write in
  // the producing thread, one 1 MiB write per thread was in flight and the disk idled while the
  // threads computed; four keep a few queued at the disk while the producers go on (the executor
  // and unpack both use it).
  static constexpr int kDirectWriters = 4;
  // `buffers` buffers of `bytes` each, kDirectAlign-aligned; `writers` threads (0: none).
  WriteBehind(size_t buffers, size_t bytes, int writers);
  // Waits for the writes in flight (their errors are lost then: finish() reports them).
  ~WriteBehind();
  WriteBehind(const WriteBehind&) = delete;
  WriteBehind& operator=(const WriteBehind&) = delete;

  // A free buffer, waiting while all are in use; throws a failed write's error.
  uint8_t* acquire();
  // Writes n bytes at `data` (inside `buf`, an acquired buffer) to `file` at `offset` through
  // OutputFileWriter::write, then frees `buf`. `file` must outlive the write (finish()).
  void submit(const OutputFileWriter& file, uint8_t* buf, const uint8_t* data, size_t n, uint64_t offset);
  // Frees an acquired buffer unwritten.
  void release(uint8_t* buf);
  // Waits until every submitted write is done; throws the first failure.
  void finish();
  size_t buffer_bytes() const { return bytes_; }

 private:
  struct Job {
    const OutputFileWriter* file;
    uint8_t* buf;
    const uint8_t* data;
    size_t n;
    uint64_t offset;
  };
  void run();
  void rethrow_locked();
  // Writes the queued blocks of `file` in the caller's thread until none is left (m_ held on entry
  // and on return); the first failure is thrown.
  void drain_locked(std::unique_lock<std::mutex>& lock, const OutputFileWriter& file);
  // Writes one dequeued job with m_ released (nothing, once a write has failed: the run is lost
  // anyway), then frees its buffer; m_ held on entry and on return. Returns the write's failure.
  std::exception_ptr write_job(std::unique_lock<std::mutex>& lock, const Job& j);

  size_t bytes_;
  std::unique_ptr<uint8_t, void (*)(void*)> arena_;
  std::mutex m_;
  std::condition_variable freed_, queued_;
  std::vector<uint8_t*> free_;
  std::deque<Job> jobs_;
  size_t busy_ = 0;  // jobs taken by a writer thread (or a caller), not yet done
  std::vector<const OutputFileWriter*> draining_;  // files a caller is writing now (no writer threads)
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

// Copies n bytes from src@src_off to dst@dst_off inside the kernel (copy_file_range), falling
// back to a bounded user-space copy where the file systems do not support it.
void copy_file_bytes(const File& src, uint64_t src_off, const File& dst, uint64_t dst_off,
                     uint64_t n);

// A read-only memory map of a whole file (empty files map to nullptr/0).
class MappedFile {
 public:
  explicit MappedFile(const File& f);
  MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; o.size_ = 0; }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

std::string read_text_file(const std::string& path);
// Writes a whole new file (O_EXCL).
void write_text_file(const std::string& path, const std::string& content);

}  // namespace ckpt
